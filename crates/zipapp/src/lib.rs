//! gradient-zipapp: the "target has a Python" rung.
//!
//! ```text
//!  wheelhouse site (locked dependencies) ─┐
//!  app wheel (unpacked) ──────────────────┼─► site/…  +  __main__.py/.pyc (bootstrap) ──► NAME-VERSION.pyz
//!  #! line ───────────────────────────────┘          sha256 of the file in the zip comment
//! ```
//! Pure-Python code imports straight from the archive, from its `.py` sources; the bootstrap
//! keeps the code compiled from them in the app's cache folder, so each module is compiled
//! once per target instead of shipping bytecode beside every source. Top-level packages
//! with compiled modules are extracted on first run into that folder, named by the
//! archive's content digest. `bootstrap.py` is the run-time half; it alone also ships
//! compiled, for the build's Python version, since it runs on every start.

mod assemble;
mod tier;

pub use assemble::{assemble, default_script, install_wheel_files, scripts_and_default, Zipapp};
pub use tier::ZipappTier;

use std::path::{Path, PathBuf};

/// Why a zipapp could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZipappError {
    #[error("{project} has no console script, so a single-file app of it has nothing to run")]
    NoEntry { project: String },
    /// Only for builders that run one script (the pyinstaller engine): gradient's own
    /// single-file tiers are multi-call files instead.
    #[error("{project} has several console scripts ({scripts}) and none is named like the project, and the pyinstaller engine runs only one")]
    AmbiguousEntry { project: String, scripts: String },
    #[error("[tool.gradient] entry `{entry}` is neither a console script of {project} ({scripts}) nor `module:function`")]
    UnknownEntry {
        entry: String,
        project: String,
        scripts: String,
    },
    #[error("the {what} input was not built")]
    MissingInput { what: &'static str },
    #[error(transparent)]
    Wheel(#[from] gradient_wheel::WheelError),
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for ZipappError {
    fn hint(&self) -> Option<String> {
        match self {
            ZipappError::NoEntry { .. } => Some(
                "add [project.scripts], or set `entry = \"module:function\"` in [tool.gradient]"
                    .into(),
            ),
            ZipappError::AmbiguousEntry { .. } => Some("choose it with `entry = \"NAME\"` in [tool.gradient], or use the default frozen engine, which runs each".into()),
            ZipappError::Wheel(error) => error.hint(),
            ZipappError::Python(error) => error.hint(),
            _ => None,
        }
    }
}

/// The `ZipappError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ZipappError {
    let path = path.to_path_buf();
    move |source| ZipappError::Io {
        action,
        path,
        source,
    }
}
