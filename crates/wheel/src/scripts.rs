//! Console scripts as an installer writes them: a small Python file that imports the entry
//! point and calls it, run by a fixed interpreter.

/// The text of the console script for `entry` (`module:function`, `module:obj.attr`,
/// extras in brackets ignored), run by `interpreter`; `None` when `entry` is malformed.
pub fn console_script(interpreter: &str, entry: &str) -> Option<String> {
    let entry = entry.split('[').next().unwrap_or(entry).trim();
    let (module, attribute) = entry.split_once(':')?;
    let (module, attribute) = (module.trim(), attribute.trim());
    let valid = |dotted: &str| {
        !dotted.is_empty()
            && dotted.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    if !valid(module) || !valid(attribute) {
        return None;
    }
    let head = attribute.split('.').next().expect("checked above");
    Some(format!(
        "#!{interpreter}\nimport sys\nfrom {module} import {head}\n\nif __name__ == \"__main__\":\n    sys.exit({attribute}())\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::console_script;

    #[test]
    fn writes_an_import_and_a_call_and_refuses_malformed_entries() {
        let text = console_script("/usr/local/bin/python3.11", "app.cli:main.run [extra]").unwrap();
        assert!(text.starts_with("#!/usr/local/bin/python3.11\n"));
        assert!(text.contains("from app.cli import main\n"));
        assert!(text.contains("sys.exit(main.run())"));
        assert_eq!(console_script("/p", "no_colon"), None);
        assert_eq!(console_script("/p", "a:b; rm -rf /"), None);
    }
}
