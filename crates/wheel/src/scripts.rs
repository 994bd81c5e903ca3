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

/// Whether a legacy script (a wheel's `.data/scripts/` file) is Python: its first line is a
/// `#!` line whose program is `python`, `pythonw` or `pythonX.Y` (a path to one, or through
/// `env`), as pip and distlib decide before rewriting it.
pub fn is_python_script(content: &[u8]) -> bool {
    let first = content.split(|b| *b == b'\n').next().unwrap_or_default();
    let Some(line) = first.strip_prefix(b"#!") else {
        return false;
    };
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let mut program = words.next().unwrap_or_default();
    if program.rsplit('/').next() == Some("env") {
        program = words.next().unwrap_or_default();
    }
    let name = program.rsplit('/').next().unwrap_or_default();
    name.strip_prefix("python")
        .map(|rest| rest.strip_prefix('w').unwrap_or(rest))
        .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// How an installed console script starts its app: the interpreter and options of its `#!`
/// line, and the code it runs before it imports the app (what it does to `sys.path`).
/// gradient's smoke test runs its probe the same way, to see what the app sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptStart {
    pub interpreter: Vec<String>,
    pub prelude: String,
    /// The folder the script is installed in, as its target sees it (`/usr/bin`); empty
    /// when not known.
    pub folder: String,
}

impl ScriptStart {
    /// The arguments that run the Python program `code` as the console script starts: its
    /// `#!` line's options, its folder first on `sys.path` (where `-c` would put the working
    /// folder), then what it runs before the import. And how to show it.
    pub fn probe_arguments(&self, code: &str) -> (Vec<String>, String) {
        let mut args = self.interpreter[1..].to_vec();
        let folder = format!(
            "import sys\nif sys.path and sys.path[0] == \"\":\n    sys.path[0] = {:?}\n",
            self.folder
        );
        args.extend(["-c".to_string(), format!("{folder}{}{code}", self.prelude)]);
        let shown = format!(
            "{} -c PROBE, after the scripts' own set-up",
            self.interpreter.join(" ")
        );
        (args, shown)
    }
}

/// [`ScriptStart`] of a console script as [`console_script`] writes it; `None` when it is not
/// a Python script.
pub fn script_start(content: &[u8]) -> Option<ScriptStart> {
    if !is_python_script(content) {
        return None;
    }
    let text = String::from_utf8_lossy(content);
    let mut lines = text.lines();
    let interpreter: Vec<String> = lines
        .next()?
        .strip_prefix("#!")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let prelude: String = lines
        .take_while(|line| !line.starts_with("from ") && !line.starts_with("if __name__"))
        .map(|line| format!("{line}\n"))
        .collect();
    (!interpreter.is_empty()).then_some(ScriptStart {
        interpreter,
        prelude,
        folder: String::new(),
    })
}

/// [`script_start`] of the first of `scripts` installed in `folder` (absolute, as the target
/// sees it) of the file tree at `root` that is a Python script.
pub fn installed_script_start<'a>(
    root: &std::path::Path,
    folder: &str,
    scripts: impl IntoIterator<Item = &'a String>,
) -> Option<ScriptStart> {
    let bin = root.join(folder.trim_start_matches('/'));
    let mut start = scripts
        .into_iter()
        .find_map(|script| script_start(&std::fs::read(bin.join(script)).ok()?))?;
    start.folder = folder.to_string();
    Some(start)
}

/// A legacy script as an installer writes it: a Python script's `#!` line replaced by one
/// for `interpreter` (pip does the same); any other file unchanged.
pub fn install_legacy_script(interpreter: &str, content: &[u8]) -> Vec<u8> {
    if !is_python_script(content) {
        return content.to_vec();
    }
    let rest = match content.iter().position(|b| *b == b'\n') {
        Some(end) => &content[end + 1..],
        None => &[],
    };
    let mut script = format!("#!{interpreter}\n").into_bytes();
    script.extend_from_slice(rest);
    script
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
    use super::{
        bundled_console_script, console_script, install_legacy_script, is_object_reference,
        is_python_script, script_start, STDLIB_ZIP_AGAIN,
    };

    #[test]
    fn a_console_scripts_start_is_its_interpreter_and_what_it_runs_before_the_import() {
        let text = bundled_console_script("/usr/lib/app/bin/python3.11 -Es", "app.cli:main")
            .unwrap()
            .replacen(
                "import sys\n",
                "import sys\nsys.path.insert(1, \"/usr/lib/x\")\n",
                1,
            );
        let start = script_start(text.as_bytes()).unwrap();
        assert_eq!(start.interpreter, ["/usr/lib/app/bin/python3.11", "-Es"]);
        assert_eq!(
            start.prelude,
            format!("import sys\nsys.path.insert(1, \"/usr/lib/x\")\n{STDLIB_ZIP_AGAIN}\n")
        );
        assert_eq!(script_start(b"#!/bin/sh\necho\n"), None);
    }

    #[test]
    fn python_legacy_scripts_get_the_interpreter_and_others_stay_as_they_are() {
        for python in [
            "#!python\n",
            "#!/usr/bin/python3 -u\n",
            "#!/usr/bin/env python3.11\n",
            "#!pythonw\n",
        ] {
            assert!(is_python_script(python.as_bytes()), "{python}");
        }
        for other in [
            "#!/bin/sh\n",
            "#!/usr/bin/env bash\n",
            "print(1)\n",
            "#!/usr/bin/pythonic\n",
        ] {
            assert!(!is_python_script(other.as_bytes()), "{other}");
        }
        assert_eq!(
            install_legacy_script("/opt/py -I", b"#!python\nprint(1)\n"),
            b"#!/opt/py -I\nprint(1)\n"
        );
        assert_eq!(
            install_legacy_script("/opt/py", b"#!/bin/sh\necho\n"),
            b"#!/bin/sh\necho\n"
        );
    }

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
