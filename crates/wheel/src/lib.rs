//! gradient-wheel: the bottom rung of the gradient, sdist and wheel.
//!
//! ```text
//!  source tree ──build_sdist──► sdist ──normalise──► NAME-VER.tar.gz ─┐
//!                                 │ unpack                            ├─► validate
//!                                 └──build_wheel──► wheel ─normalise─► NAME-VER-TAGS.whl ─┘
//! ```
//! [`build_distributions`] drives the PEP 517 hooks (through `gradient-python`'s runner) and
//! returns both files, byte-reproducible and checked ([`metadata`]). The driver builds them
//! once per run as shared inputs; [`SdistTier`] and [`WheelTier`] publish and smoke-test them.

mod app;
mod build;
mod cache;
pub mod metadata;
mod scripts;
mod tiers;

pub use app::{app_wheel, install_wheel_files, read_app_wheel};
pub use build::{
    build_distributions, cached_distributions, BuildRequest, Distributions, WheelRoute,
};
pub use scripts::{
    bundled_console_script, console_script, install_legacy_script, installed_script_start,
    is_object_reference, is_python_script, script_start, ScriptStart, STDLIB_ZIP_AGAIN,
};

/// Where this crate stages entries in the cache (folder, name prefix): the cache of built
/// distributions (`.KEY-*`).
pub fn staging_areas(cache: &std::path::Path) -> Vec<(std::path::PathBuf, &'static str)> {
    vec![(cache.join("dists"), ".")]
}
pub use tiers::{SdistTier, WheelTier};

use std::path::{Path, PathBuf};

/// Why an sdist or wheel could not be built or does not pass its checks.
#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error(transparent)]
    Hook(#[from] gradient_python::HookError),
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
    #[error("the build backend's `{hook}` hook returned {value}, not a {expected}")]
    BadHookResult {
        hook: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{file}` is invalid: {problem}")]
    Invalid {
        file: String,
        problem: String,
        hint: Option<String>,
    },
    #[error("`{file}` does not match pyproject.toml: {problem}")]
    Mismatch {
        file: String,
        problem: String,
        hint: String,
    },
}

/// The `WheelError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WheelError {
    let path = path.to_path_buf();
    move |source| WheelError::Io {
        action,
        path,
        source,
    }
}

impl gradient_core::Hint for WheelError {
    fn hint(&self) -> Option<String> {
        match self {
            WheelError::Python(error) => error.hint(),
            WheelError::Hook(error) => error.hint(),
            WheelError::Mismatch { hint, .. } => Some(hint.clone()),
            WheelError::Invalid { hint, .. } => hint.clone(),
            WheelError::Archive(_) | WheelError::BadHookResult { .. } | WheelError::Io { .. } => {
                None
            }
        }
    }
}
