//! gradient-launcher: the front of every frozen executable.
//!
//! ```text
//!  [ this launcher ][ payload: tar.gz of the bundle ][ trailer (128 bytes) ]
//!                                                      magic · offset · length · sha256 · name
//! ```
//! First run: the payload is checked against its sha256, extracted under a lock into a
//! staging folder beside `CACHE/NAME-DIGEST/`, a completion marker is written last and the
//! folder renamed into place. Every run: read `launch.txt` from that folder and `exec` the
//! bundled interpreter, isolated from the host's Python settings. Old extractions of the
//! same app are pruned.

mod cache;
mod payload;

pub use cache::{cache_root, prepare, Prepared};
pub use payload::{read_trailer, write_trailer, Trailer, TRAILER_LEN};

use std::path::PathBuf;

/// What can go wrong before the interpreter takes over. Each names the problem for a person.
#[derive(Debug)]
pub enum LaunchError {
    /// The executable is not a frozen app, or its end is missing.
    NoPayload(String),
    /// The file does not match its recorded digest, or its payload does not unpack.
    Damaged(String),
    /// The payload holds an entry that would land outside the extraction folder, or one
    /// of a kind gradient never writes.
    Unsafe(String),
    /// The temp-dir fallback cache exists but is not a folder only this user can write.
    NotPrivate(PathBuf),
    /// Writing the extraction failed (disk full, permissions).
    Extract {
        folder: PathBuf,
        error: std::io::Error,
    },
    /// The extracted `launch.txt` is missing or malformed.
    Launch(String),
    Io(std::io::Error),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::NoPayload(why) => {
                write!(f, "this executable carries no app payload: {why}")
            }
            LaunchError::Damaged(why) => write!(f, "this executable is damaged: {why}"),
            LaunchError::Unsafe(what) => write!(
                f,
                "the payload holds an unsafe entry {what}; refusing to extract it"
            ),
            LaunchError::NotPrivate(path) => write!(
                f,
                "the fallback cache `{}` is not a private folder of this user; refusing to use it",
                path.display()
            ),
            LaunchError::Extract { folder, error } => {
                write!(f, "failed to extract into `{}`: {error}", folder.display())?;
                // The tar reader wraps the cause (a full disk, say) without showing it.
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                Ok(())
            }
            LaunchError::Launch(why) => write!(f, "the extracted app is incomplete: {why}"),
            LaunchError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl LaunchError {
    /// What the user can do about it, printed on a `hint:` line of its own.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LaunchError::NoPayload(_) => {
                Some("it is damaged (truncated?); download or build it again")
            }
            LaunchError::Damaged(_) => Some("download or build it again; nothing was extracted"),
            LaunchError::Unsafe(_) => {
                Some("gradient did not write this payload as it is; build the executable again")
            }
            LaunchError::NotPrivate(_) => Some("set GRADIENT_FROZEN_CACHE to a folder of your own"),
            LaunchError::Extract { .. } => Some(
                "free some space, or point GRADIENT_FROZEN_CACHE at a writable folder with room",
            ),
            LaunchError::Launch(_) | LaunchError::Io(_) => None,
        }
    }
}

impl From<std::io::Error> for LaunchError {
    fn from(error: std::io::Error) -> Self {
        LaunchError::Io(error)
    }
}

/// `launch.txt`: how to start the app, written by gradient at build time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The interpreter, relative to the extraction folder.
    pub python: String,
    /// The script run when the invoked name is not one of `scripts`; without one, a
    /// multi-call executable lists its scripts instead.
    pub default: Option<String>,
    /// Script name → `module:function` for a console script; for a legacy (setuptools
    /// `scripts=`) file, `python-file:PATH` (its code runs as `__main__`) or `program:PATH`
    /// (run as it is), PATH relative to the extraction folder.
    pub scripts: Vec<(String, String)>,
}

impl Launch {
    /// Parse `python = …`, `default = …` and `script NAME = module:function` lines.
    pub fn parse(text: &str) -> Result<Launch, LaunchError> {
        let mut launch = Launch {
            python: String::new(),
            default: None,
            scripts: Vec::new(),
        };
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, value) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim().to_string()))
                .ok_or_else(|| LaunchError::Launch(format!("bad line `{line}` in launch.txt")))?;
            match key.split_once(' ') {
                Some(("script", name)) => launch.scripts.push((name.trim().to_string(), value)),
                _ if key == "python" => launch.python = value,
                _ if key == "default" => launch.default = Some(value),
                _ => {
                    return Err(LaunchError::Launch(format!(
                        "unknown key `{key}` in launch.txt"
                    )))
                }
            }
        }
        let default_missing = match &launch.default {
            Some(default) => launch.script(default).is_none(),
            None => launch.scripts.is_empty(),
        };
        if launch.python.is_empty() || default_missing {
            return Err(LaunchError::Launch(
                "launch.txt lacks `python`, its default script or any script".into(),
            ));
        }
        Ok(launch)
    }

    /// The text of `launch.txt`, which [`Launch::parse`] reads back.
    pub fn render(&self) -> String {
        let mut text = format!("python = {}\n", self.python);
        if let Some(default) = &self.default {
            text.push_str(&format!("default = {default}\n"));
        }
        for (name, target) in &self.scripts {
            text.push_str(&format!("script {name} = {target}\n"));
        }
        text
    }

    pub fn script(&self, name: &str) -> Option<&str> {
        self.scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, target)| target.as_str())
    }

    /// The target of a legacy script at `path` (see `scripts`).
    pub fn legacy_target(path: &str, python: bool) -> String {
        let kind = if python { PYTHON_FILE } else { PROGRAM };
        format!("{kind}{path}")
    }

    /// What running `target` takes: its `module:function`, or a legacy script's path.
    pub fn target_kind(target: &str) -> Target<'_> {
        if let Some(path) = target.strip_prefix(PYTHON_FILE) {
            Target::PythonFile(path)
        } else if let Some(path) = target.strip_prefix(PROGRAM) {
            Target::Program(path)
        } else {
            Target::Function(target)
        }
    }

    /// The Python code that runs the Python script at `path` as `__main__`, as `argv[0]`,
    /// after [`STDLIB_ZIP_PRELUDE`].
    pub fn file_code(path: &str) -> String {
        format!(
            "{STDLIB_ZIP_PRELUDE}import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path({path:?}, run_name=\"__main__\")"
        )
    }

    /// The Python code that runs `target` (`module:function`) as `argv[0]`, after
    /// [`STDLIB_ZIP_PRELUDE`]. `-I` leaves no script folder at `sys.path[0]`, so the
    /// standard-library zip would be there, and scripts that drop `sys.path[0]` (in a venv,
    /// their own folder) would lose the standard library: the interpreter's `bin` folder,
    /// which holds no modules, takes the place of a venv's `bin`.
    pub fn code(target: &str) -> String {
        let (module, function) = target.split_once(':').unwrap_or((target, "main"));
        let function = function.split('[').next().unwrap_or(function).trim();
        let (head, rest) = function.split_once('.').unwrap_or((function, ""));
        let mut access = head.to_string();
        for part in rest.split('.').filter(|p| !p.is_empty()) {
            access = format!("{access}.{part}");
        }
        format!(
            "{STDLIB_ZIP_PRELUDE}{VENV_PATH}from {} import {head}; sys.exit({access}())",
            module.trim()
        )
    }

    /// The Python code that runs `code` as the bundled Python runs a console script (after
    /// [`STDLIB_ZIP_PRELUDE`], with a venv's `sys.path`): how gradient's smoke test probes
    /// what the app sees.
    pub fn probe_code(code: &str) -> String {
        format!("{STDLIB_ZIP_PRELUDE}{VENV_PATH}{code}")
    }
}

const PYTHON_FILE: &str = "python-file:";
const PROGRAM: &str = "program:";

/// How a script of `launch.txt` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `module:function`, called by the bundled Python.
    Function(&'a str),
    /// A legacy Python script (path in the extraction folder), run as `__main__`.
    PythonFile(&'a str),
    /// A legacy script of another kind (a shell script), run as the program it is.
    Program(&'a str),
}

/// After [`STDLIB_ZIP_PRELUDE`]: the arguments and `sys.path` of a venv's console script,
/// and the standard-library zip once more at the end of `sys.path` for scripts that drop
/// `sys.path[0]` again in their `multiprocessing` children (gradient-wheel's
/// `STDLIB_ZIP_AGAIN` says why; this crate depends on no other).
const VENV_PATH: &str = "import sys; sys.argv = sys.argv[1:]; \
    sys.path.insert(0, sys.executable.rpartition('/')[0]); \
    sys.path.append('%s/lib/python%d%d.zip' % (sys.base_prefix, *sys.version_info[:2])); ";

/// Run before the app: zipimport names a module's file by loading its code, then loads the
/// code again to run it, so every standard-library module imported from the bundle's
/// `lib/pythonXY.zip` was unmarshalled twice (about 6 ms of a 90 ms start-up here). That zip
/// is gradient's own, one `.pyc` per module compiled by this interpreter, so the file
/// zipimport would pick is the first `.pyc` in its search order, found in its listing
/// without loading anything. Other archives keep zipimport's own answer.
pub const STDLIB_ZIP_PRELUDE: &str = r#"import sys, zipimport
def _stdlib_zip_filename(self, fullname, _original=zipimport.zipimporter.get_filename,
        _stdlib_zip="%s/lib/python%d%d.zip" % (sys.base_prefix, *sys.version_info[:2])):
    if self.archive == _stdlib_zip:
        files = self._get_files() if hasattr(self, "_get_files") else getattr(self, "_files", {})
        base = self.prefix + fullname.rpartition(".")[2]
        for suffix in ("/__init__.pyc", ".pyc"):
            entry = files.get(base + suffix)
            if entry is not None:
                return entry[0]
    return _original(self, fullname)
zipimport.zipimporter.get_filename = _stdlib_zip_filename
del _stdlib_zip_filename
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_files_parse_and_give_code() {
        let launch = Launch::parse(
            "python = python/bin/python3.11\ndefault = app\nscript app = app.cli:main\nscript other = app.cli:Other.run\n",
        )
        .unwrap();
        assert_eq!(launch.script("other"), Some("app.cli:Other.run"));
        assert_eq!(
            Launch::code("app.cli:Other.run"),
            format!(
                "{STDLIB_ZIP_PRELUDE}{VENV_PATH}from app.cli import Other; sys.exit(Other.run())"
            )
        );
        assert!(Launch::parse("python = x\ndefault = missing\n").is_err());
    }

    #[test]
    fn legacy_scripts_are_told_from_functions() {
        assert_eq!(
            Launch::target_kind(&Launch::legacy_target("scripts/t", true)),
            Target::PythonFile("scripts/t")
        );
        assert_eq!(
            Launch::target_kind(&Launch::legacy_target("scripts/s", false)),
            Target::Program("scripts/s")
        );
        assert_eq!(Launch::target_kind("a.b:c"), Target::Function("a.b:c"));
    }

    #[test]
    fn a_multi_call_launch_file_has_scripts_and_no_default() {
        let text = "python = p\nscript a = m:a\nscript b = m:b\n";
        let launch = Launch::parse(text).unwrap();
        assert_eq!(launch.default, None);
        assert_eq!(launch.render(), text);
        assert!(Launch::parse("python = p\n").is_err(), "nothing to run");
    }
}
