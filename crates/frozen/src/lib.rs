//! gradient-frozen: the "target has a libc" rung: one executable that carries its own
//! CPython and needs no Python on the target.
//!
//! ```text
//!  launcher (crates/launcher, embedded) ─┐
//!  runtime.tar.gz (the bundle, cached) ──┼─► NAME-VERSION-linux-x86_64
//!  app.tar.gz (site-packages, launch.txt)┤
//!  trailer (offset, length, sha256, name)┘
//! ```
//! The runtime part is compressed once per runtime bundle and reused; each build writes only
//! the app part. Both parts are tar streams in gzip members, read back to back.

mod assemble;
mod pyinstaller;
mod tier;

pub use assemble::{assemble, staging_areas, Frozen};
pub use tier::FrozenTier;

use std::path::{Path, PathBuf};

/// The launcher binary every frozen executable starts with.
pub const LAUNCHER: &[u8] = include_bytes!(env!("GRADIENT_LAUNCHER"));

/// Why a frozen executable could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FrozenError {
    #[error(transparent)]
    Entry(#[from] gradient_core::EntryError),
    /// Only for builders that run one script (the pyinstaller engine): gradient's own
    /// single-file tiers are multi-call files instead.
    #[error("{project} has several console scripts ({scripts}) and none is named like the project, and the pyinstaller engine runs only one")]
    AmbiguousEntry { project: String, scripts: String },
    #[error(transparent)]
    Wheel(#[from] gradient_wheel::WheelError),
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error("the default script `{script}` is a legacy `scripts=` file, which the pyinstaller engine cannot run")]
    PyInstallerLegacyScript { script: String },
    #[error("PyInstaller failed:\n{detail}")]
    PyInstaller { detail: String },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for FrozenError {
    fn hint(&self) -> Option<String> {
        match self {
            FrozenError::Entry(error) => error.hint(),
            FrozenError::AmbiguousEntry { .. } => Some("choose it with `entry = \"NAME\"` in [tool.gradient], or use the default frozen engine, which runs each".into()),
            FrozenError::Wheel(error) => error.hint(),
            FrozenError::Python(error) => error.hint(),
            FrozenError::PyInstallerLegacyScript { .. } => Some("use the default frozen engine, or choose a console script with `entry = \"NAME\"` in [tool.gradient]".into()),
            _ => None,
        }
    }
}

/// The `FrozenError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FrozenError {
    let path = path.to_path_buf();
    move |source| FrozenError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    /// Whether `needle` occurs in `haystack`.
    fn holds(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn the_embedded_launcher_names_no_path_of_the_machine_that_built_it() {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap();
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo")
            });
        for path in [workspace, cargo_home.join("registry")] {
            let path = path.to_string_lossy();
            assert!(
                !holds(super::LAUNCHER, &path),
                "the launcher holds `{path}`"
            );
        }
        assert!(
            holds(super::LAUNCHER, "GRADIENT_FROZEN_CACHE"),
            "the launcher is searched"
        );
    }

    #[test]
    fn the_embedded_launcher_needs_no_library_of_the_target() {
        // Rust's standard library links libgcc_s.so.1 for unwinding, even with panic=abort:
        // a target with only glibc could not start a frozen executable at all.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launcher");
        std::fs::write(&path, super::LAUNCHER).unwrap();
        let facts = gradient_python::elf::read(&path)
            .unwrap()
            .expect("an ELF file");
        assert_eq!(facts.needed, Vec::<String>::new());
    }
}
