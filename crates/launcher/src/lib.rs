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
            LaunchError::NoPayload(why) => write!(f, "this executable carries no app payload: {why}\n  hint: it is damaged (truncated?); download or build it again"),
            LaunchError::Damaged(why) => write!(f, "this executable is damaged: {why}\n  hint: download or build it again; nothing was extracted"),
            LaunchError::Unsafe(what) => write!(f, "the payload holds an unsafe entry {what}; refusing to extract it\n  hint: gradient did not write this payload as it is; build the executable again"),
            LaunchError::NotPrivate(path) => write!(f, "the fallback cache `{}` is not a private folder of this user; refusing to use it\n  hint: set GRADIENT_FROZEN_CACHE to a folder of your own", path.display()),
            LaunchError::Extract { folder, error } => {
                write!(f, "failed to extract into `{}`: {error}", folder.display())?;
                // The tar reader wraps the cause (a full disk, say) without showing it.
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                write!(f, "\n  hint: free some space, or point GRADIENT_FROZEN_CACHE at a writable folder with room")
            }
            LaunchError::Launch(why) => write!(f, "the extracted app is incomplete: {why}"),
            LaunchError::Io(error) => write!(f, "{error}"),
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
    /// The script run when the invoked name is not one of `scripts`.
    pub default: String,
    /// Console script name → `module:function`.
    pub scripts: Vec<(String, String)>,
}

impl Launch {
    /// Parse `python = …`, `default = …` and `script NAME = module:function` lines.
    pub fn parse(text: &str) -> Result<Launch, LaunchError> {
        let mut launch = Launch {
            python: String::new(),
            default: String::new(),
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
                _ if key == "default" => launch.default = value,
                _ => {
                    return Err(LaunchError::Launch(format!(
                        "unknown key `{key}` in launch.txt"
                    )))
                }
            }
        }
        if launch.python.is_empty() || launch.script(&launch.default).is_none() {
            return Err(LaunchError::Launch(
                "launch.txt lacks `python` or its default script".into(),
            ));
        }
        Ok(launch)
    }

    /// The text of `launch.txt`, which [`Launch::parse`] reads back.
    pub fn render(&self) -> String {
        let mut text = format!("python = {}\ndefault = {}\n", self.python, self.default);
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
}
