//! gradient-oci: the container tiers. `oci` writes a reproducible image tarball without a
//! daemon; `docker` writes the same tarball and loads it into a Docker engine.
//!
//! ```text
//!  runtime bundle ─┐                     ┌─ base: scratch (glibc from the host) | docker:NAME | oci:PATH
//!  wheelhouse ─────┼─► layers (cached by ─┼─ runtime  (unless the base has its CPython)
//!  wheel ──────────┘   content digest)    ├─ dependencies
//!                                         └─ app + console scripts
//!        ─► config + manifest + index ─► NAME-VERSION.oci.tar (OCI layout + docker manifest.json)
//!            (one image per platform; several are listed by an image index, blobs stored once)
//!        ─► docker tier: bollard images/load ─► smoke: a container without network
//! ```

mod base;
mod content;
mod engine;
mod image;
mod layer;
mod reference;
mod rootfs;
mod tier;

pub use base::{find_python, BasePython};
pub use engine::{engine_address, Engine, HeldImage};
pub use image::{
    write_layout, ImageDigests, ImageLayer, ImageSpec, Layout, LayoutDigests, PlatformImage,
    RunConfig,
};
pub use layer::{make_layer, staging_areas, Layer};
pub use reference::{check_reference, default_tags};
pub use rootfs::{tarball_images, TarballImage};
pub use tier::{platform_tag, DockerTier, OciTier};

use std::path::{Path, PathBuf};

/// Why an image could not be built, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    MissingInput(#[from] gradient_core::MissingInput),
    #[error("no Docker engine answers at {address}: {reason}")]
    NoEngine { address: String, reason: String },
    #[error("permission denied on the Docker engine at {address}")]
    EnginePermission { address: String },
    #[error("the Docker engine refused to {action}: {message}")]
    EngineRejected {
        action: &'static str,
        message: String,
    },
    #[error("the base image `{image}` is not in the local engine")]
    BaseNotFound { image: String },
    #[error("the base image `{}` does not exist", path.display())]
    BaseMissing { path: PathBuf },
    #[error("the base image {base} cannot be used: {reason}")]
    BadBase { base: String, reason: String },
    #[error("the base image {base} has CPython {found} at {python}, but the dependencies were resolved for CPython {wanted}")]
    BasePythonMismatch {
        base: String,
        python: String,
        found: String,
        wanted: String,
    },
    #[error("the image tarball cannot be written: {reason}")]
    BadLayout { reason: String },
    #[error("`{reference}` is not a valid image reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("the base image `{base}` is used for the host's platform only, and this build is also for {platform}")]
    ForeignBase { base: String, platform: String },
    #[error("user `{user}` does not exist in a scratch image")]
    UnknownUser { user: String },
    #[error(
        "the entry point `{entry}` of script `{script}` cannot be turned into a console script"
    )]
    BadEntryPoint { script: String, entry: String },
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
    Sandbox(#[from] gradient_sandbox::SandboxError),
    #[error(transparent)]
    Entry(#[from] gradient_core::EntryError),
}

impl gradient_core::Hint for OciError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            OciError::NoEngine { .. } => "start one (`sudo systemctl start docker`, or `dockerd &`), or set DOCKER_HOST to where it listens".into(),
            OciError::EnginePermission { .. } => "add yourself to the `docker` group (`sudo usermod -aG docker $USER`, then log in again), or set DOCKER_HOST to an engine you may use".into(),
            OciError::BaseNotFound { .. } => "no registry is contacted: make it first (`docker pull`, `docker build`, or `docker load -i FILE`), or use base = \"oci:PATH\" for an image on disk".into(),
            OciError::BaseMissing { .. } => "`base = \"oci:PATH\"` takes an OCI layout folder or tarball, relative to the project folder".into(),
            OciError::BasePythonMismatch { found, wanted, .. } => format!("build with --python {found}, or choose a base with CPython {wanted}"),
            OciError::BadReference { .. } => "use NAME[:TAG], e.g. --tag myapp:1.0 (lower-case name; tag of letters, digits, `_`, `.`, `-`)".into(),
            OciError::ForeignBase { .. } => "build the other platforms' images on the default base (leave [tool.gradient.container] base unset), or build for the host's platform only".into(),
            OciError::UnknownUser { .. } => "use `app` (the default, uid 1000), `nobody`, `root`, or a number UID[:GID] in [tool.gradient.container] user".into(),
            OciError::Python(error) => return error.hint(),
            OciError::Wheel(error) => return error.hint(),
            OciError::Entry(error) => return error.hint(),
            OciError::Sandbox(error) => return error.hint(),
            _ => return None,
        })
    }
}

/// The `OciError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io {
        action,
        path,
        source,
    }
}
