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

pub use assemble::{assemble, Zipapp};
pub use tier::ZipappTier;

use std::path::{Path, PathBuf};

/// Why a zipapp could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZipappError {
    #[error(transparent)]
    Entry(#[from] gradient_core::EntryError),
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
            ZipappError::Entry(error) => error.hint(),
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
