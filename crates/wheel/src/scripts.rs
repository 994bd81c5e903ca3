//! Console scripts as an installer writes them: a small Python file that imports the entry
//! point and calls it, run by a fixed interpreter.

/// The text of the console script for `entry` (`module:function`, `module:obj.attr`,
/// extras in brackets ignored), run by `interpreter`; `None` when `entry` is malformed.
pub fn console_script(interpreter: &str, entry: &str) -> Option<String> {
    let (module, attribute) = object_reference(entry)?;
    let head = attribute.split('.').next().expect("checked above");
    Some(format!(
        "#!{interpreter}\nimport sys\nfrom {module} import {head}\n\nif __name__ == \"__main__\":\n    sys.exit({attribute}())\n"
    ))
}

/// The code that adds the bundled standard-library zip (`lib/pythonXY.zip` of
/// `sys.base_prefix`) once more at the end of `sys.path`. In a venv the entries after the
/// script's folder are a zip that does not exist and then the standard library's folder, so
/// a script that drops `sys.path[0]` again (in each `multiprocessing` child, where the main
/// script runs again on the parent's `sys.path`) loses nothing; a bundle's standard library
/// is that zip, and without a second entry such a script would lose it. Where the zip does
/// not exist the entry costs one failed look-up, cached.
pub const STDLIB_ZIP_AGAIN: &str =
    "sys.path.append(\"%s/lib/python%d%d.zip\" % (sys.base_prefix, *sys.version_info[:2]))";

/// [`console_script`] for an interpreter whose standard library may be a zip (gradient's
/// runtime bundle): as an installer writes it, with [`STDLIB_ZIP_AGAIN`] after `import sys`.
pub fn bundled_console_script(interpreter: &str, entry: &str) -> Option<String> {
    let text = console_script(interpreter, entry)?;
    Some(text.replacen(
        "import sys\n",
        &format!("import sys\n{STDLIB_ZIP_AGAIN}\n"),
        1,
    ))
}

/// Whether `entry` is an object reference as the entry-points spec defines it:
/// `module.path:attr.path`, optionally followed by `[extras]`.
pub fn is_object_reference(entry: &str) -> bool {
    object_reference(entry).is_some()
}

/// `entry`'s module and attribute paths, when it is an object reference.
fn object_reference(entry: &str) -> Option<(&str, &str)> {
    let entry = match entry.split_once('[') {
        Some((reference, extras)) if extras.trim_end().ends_with(']') && !extras.contains('[') => {
            reference
        }
        Some(_) => return None,
        None => entry,
    };
    let (module, attribute) = entry.trim().split_once(':')?;
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
    (valid(module) && valid(attribute)).then_some((module, attribute))
}

#[cfg(test)]
mod tests {
    use super::{bundled_console_script, console_script, is_object_reference, STDLIB_ZIP_AGAIN};

    #[test]
    fn writes_an_import_and_a_call_and_refuses_malformed_entries() {
        let text = console_script("/usr/local/bin/python3.11", "app.cli:main.run [extra]").unwrap();
        assert!(text.starts_with("#!/usr/local/bin/python3.11\n"));
        assert!(text.contains("from app.cli import main\n"));
        assert!(text.contains("sys.exit(main.run())"));
        assert_eq!(console_script("/p", "no_colon"), None);
        assert_eq!(console_script("/p", "a:b; rm -rf /"), None);
        assert!(is_object_reference("app.cli:main [extra, other]"));
        assert!(!is_object_reference("app:main [x] [y]"));
        assert!(!is_object_reference("os:system('id')"));
        assert!(!is_object_reference("app:main;__import__('os')"));
    }

    #[test]
    fn a_bundled_script_adds_the_stdlib_zip_again_before_importing_the_app() {
        let text =
            bundled_console_script("/usr/lib/app/bin/python3.11 -Es", "app.cli:main").unwrap();
        let again = text.find(STDLIB_ZIP_AGAIN).expect("the zip is added again");
        assert!(text.find("import sys\n").unwrap() < again);
        assert!(again < text.find("from app.cli import main").unwrap());
        let checked = std::process::Command::new("python3")
            .args([
                "-I",
                "-c",
                &format!("import sys\n{STDLIB_ZIP_AGAIN}\nprint(sys.path[-1])"),
            ])
            .output();
        if let Ok(output) = checked {
            let last = String::from_utf8_lossy(&output.stdout);
            assert!(last.trim().ends_with(".zip"), "{last}");
        }
    }
}
