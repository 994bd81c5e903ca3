//! gradient-python: everything that talks to a Python interpreter.
//!
//! - [`interpreter`]: find the build interpreter (`--python`, `[tool.gradient] python`,
//!   `python3` on PATH, pyenv versions) and probe its facts once, cached on disk.
//! - [`installer`]: create virtual environments and install into them, with `uv` when it is
//!   on PATH, else `pip`.
//! - [`build_env`]: isolated PEP 517 build environments, cached by a hash of the interpreter
//!   and the requirement set, created atomically.
//! - [`pep517`]: the hook runner, a small Python program embedded in the binary that calls the
//!   backend's hooks in one process per source tree and reports over a private channel.
//!
//! - [`staging`]: staging folders and files held under a lock while in use, and the sweep
//!   that removes those a killed run left.
//!
//! - [`target_python`]: Debian's CPython for another Debian architecture (arm64), assembled
//!   with a private apt into a root folder of the cache, runnable under qemu-user.
//!
//! Nothing here prints: progress and backend output go to `tracing`.

pub mod build_env;
pub mod elf;
pub mod installer;
pub mod integrity;
pub mod interpreter;
pub mod pep517;
mod process;
pub mod reference;
pub mod runtime;
mod runtime_download;
pub mod smoke;
pub mod staging;
pub mod target_python;
pub mod wheel_target;
pub mod wheelhouse;

pub use build_env::BuildEnv;
pub use installer::Installer;
pub use interpreter::{find_interpreter, PythonRequest};
pub use pep517::{HookError, HookRunner, HookSettings};
pub use process::{is_root, isolated_env, ProcessGroup};

use std::path::{Path, PathBuf};

/// Where this crate stages entries in the cache (folder, name prefix), for
/// [`staging::sweep`]: build environments, runtime bundles, unpacked and downloaded runtime
/// archives, installed wheelhouses (each `.KEY-*`), interpreter facts (`.tmp*`) and hook
/// logs.
pub fn staging_areas(cache: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (cache.join("build-envs"), "."),
        (cache.join("runtimes"), "."),
        (cache.join("runtime-archives"), "."),
        (cache.join("runtime-downloads"), "."),
        (cache.join("wheelhouses"), "."),
        (cache.join("debian-python"), "."),
        (cache.join("interpreters"), ".tmp"),
        (pep517::logs_folder(cache), pep517::LOG_STAGING_PREFIX),
    ]
}

/// gradient's cache root: `$GRADIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/gradient`, else
/// `~/.cache/gradient`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADIENT_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gradient")
}

impl gradient_core::Hint for PythonError {
    fn hint(&self) -> Option<String> {
        match self {
            PythonError::NotFound { hint_version, .. } => Some(format!(
                "install one (e.g. `pyenv install {hint_version}`), or pass `--python /path/to/python3`"
            )),
            _ => None,
        }
    }
}

/// Why something Python-related failed.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("no Python interpreter found for {request}{}", if searched.is_empty() { String::new() } else { format!(" (looked for {})", searched.join(", ")) })]
    NotFound {
        request: String,
        hint_version: String,
        searched: Vec<String>,
    },
    #[error("`{}` is not a usable Python interpreter: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error("failed to {action}: `{command}` exited with {status}\n{tail}")]
    Command {
        action: String,
        command: String,
        status: String,
        tail: String,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
