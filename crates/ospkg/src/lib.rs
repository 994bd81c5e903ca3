//! gradient-ospkg: the OS-package tiers. `deb` and `rpm` are written natively (no
//! `dpkg-deb`, no `rpmbuild`) from one format-neutral spec, and checked with the real tools.
//!
//! ```text
//!  wheel + wheelhouse (+ runtime bundle) ─► spec: files, name/version in the format's rules,
//!                                           depends, scripts, service unit
//!        ─► deb.rs: ar(debian-binary, control.tar.gz, data.tar.gz) ─► NAME_V-1_ARCH.deb
//!        ─► rpm.rs: the rpm crate, zstd payload, unsigned             ─► NAME-V-1.ARCH.rpm
//!           (with rpmlint.rs: the filters for what rpmlint flags by design, in the package)
//!  smoke: dpkg-deb --info/--contents, rpm -qip / -K, then the package laid down in a root
//!         holding only the host's C library, and its console script run there (chroot);
//!         for another platform (arm64), beside its C library, run under qemu-user
//! ```

mod deb;
mod rpm;
mod rpmlint;
mod scripts;
mod spec;
mod strip;
mod tier;

pub use spec::{name_and_version, package_config, PackageSpec};
pub use strip::{staging_areas, stripped_runtime};
pub use tier::PackageTier;

use std::path::{Path, PathBuf};

/// Why a package could not be built or checked.
#[derive(Debug, thiserror::Error)]
pub enum OsPkgError {
    #[error(transparent)]
    MissingInput(#[from] gradient_core::MissingInput),
    #[error("{what} cannot be used in the package: {rule}")]
    Unmappable {
        what: String,
        rule: String,
        setting: String,
    },
    #[error(
        "a Debian package needs a maintainer with an email address, and the project has {found}"
    )]
    NoMaintainer { found: String },
    #[error("the `system` layout runs the distribution's python3 {python}, and `{dist}` is built for {tags}")]
    WheelDoesNotFit {
        dist: String,
        tags: String,
        python: String,
    },
    #[error(
        "the entry point `{entry}` of script `{script}` cannot be turned into a console script"
    )]
    BadEntryPoint { script: String, entry: String },
    #[error("[tool.gradient.service] command starts with `{program}`, which is not a console script of the project ({scripts})")]
    ServiceNotAScript { program: String, scripts: String },
    #[error("[tool.gradient.service] has no command, and the project has several console scripts ({scripts}) and no default one")]
    ServiceWithoutCommand { scripts: String },
    #[error("`strip` failed on the package's compiled code: {detail}")]
    Strip { detail: String },
    #[error("the rpm writer failed: {0}")]
    Rpm(String),
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error(transparent)]
    Wheel(#[from] gradient_wheel::WheelError),
    #[error(transparent)]
    Entry(#[from] gradient_core::EntryError),
    #[error(transparent)]
    Sandbox(#[from] gradient_sandbox::SandboxError),
}

impl gradient_core::Hint for OsPkgError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            OsPkgError::Unmappable { setting, .. } => format!("set {setting}"),
            OsPkgError::NoMaintainer { .. } => "set maintainer = \"Name <email>\" in [tool.gradient.deb], or DEBFULLNAME and DEBEMAIL in the environment (as for dch), or add an email to [project] authors or maintainers (`{ name = \"...\", email = \"...\" }`)".into(),
            OsPkgError::WheelDoesNotFit { python, .. } => format!("use layout = \"bundled\" (the package brings its own CPython), or build with --python {python} so the dependencies are resolved for it"),
            OsPkgError::ServiceNotAScript { .. } => "start the command with one of those; the unit runs /usr/bin/SCRIPT".into(),
            OsPkgError::ServiceWithoutCommand { .. } => "set command = [\"SCRIPT\", ...] in [tool.gradient.service], or entry = \"SCRIPT\" in [tool.gradient]".into(),
            OsPkgError::Python(error) => return error.hint(),
            OsPkgError::Wheel(error) => return error.hint(),
            OsPkgError::Entry(error) => return error.hint(),
            OsPkgError::Sandbox(error) => return error.hint(),
            _ => return None,
        })
    }
}

/// The `OsPkgError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OsPkgError {
    let path = path.to_path_buf();
    move |source| OsPkgError::Io {
        action,
        path,
        source,
    }
}
