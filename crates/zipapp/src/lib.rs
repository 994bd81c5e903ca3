//! gradient-zipapp: the "target has a Python" rung.
//!
//! ```text
//!  wheelhouse site (deps, compiled) ─┐
//!  app wheel (installed, compiled) ──┼─► site/…  +  __main__.py (bootstrap)  ──► NAME-VERSION.pyz
//!  shebang line ─────────────────────┘                 digest in the zip comment
//! ```
//! Pure-Python code imports straight from the archive, from `.pyc` files compiled at build
//! time (unchecked-hash, so the archive stays reproducible). Top-level packages with
//! compiled modules are extracted on first run into a cache folder named by the archive's
//! content digest; see `bootstrap.py` for the run-time half.

mod assemble;
mod tier;

pub use assemble::{assemble, default_script, Zipapp};
pub use tier::ZipappTier;

use std::path::PathBuf;

/// Why a zipapp could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZipappError {
    #[error("{project} has no console script, so the zipapp has nothing to run\n  hint: add [project.scripts], or set `entry = \"module:function\"` in [tool.gradient]")]
    NoEntry { project: String },
    #[error("{project} has several console scripts ({scripts}) and none is named like the project\n  hint: choose the default one with `entry = \"NAME\"` in [tool.gradient]")]
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
