//! gradient-sandbox: where gradient runs an artifact without a container engine.
//!
//! ```text
//!  host's glibc + loader (+ system libraries) ─► scratch_base ─► entries of a root that
//!                                                                holds only the C library
//!  a root folder on disk (an unpacked image,  ─► Rootfs ─► chroot inside new network,
//!  a package laid down over the scratch base)               mount and PID namespaces
//! ```
//! Below the tiers: the oci tier builds its scratch images from [`scratch_base`] and runs
//! its unpacked image through [`Rootfs`]; the deb and rpm tiers lay their package down over
//! the same base and run its console scripts the same way.

mod chroot;
mod scratch;

pub use chroot::Rootfs;
pub use scratch::{scratch_base, scratch_owner, system_libraries, APP_UID, HOST_LOCALE};

use std::path::PathBuf;

/// Why a scratch root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the build host's C library was not found (no libc.so.6 in the loader cache)")]
    NoGlibc,
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
}

impl gradient_core::Hint for SandboxError {
    fn hint(&self) -> Option<String> {
        match self {
            SandboxError::NoGlibc => Some(
                "a scratch image carries the host's glibc; run `ldconfig`, or use a base image with base = \"docker:NAME:TAG\""
                    .into(),
            ),
            SandboxError::Io { .. } | SandboxError::Archive(_) => None,
        }
    }
}
