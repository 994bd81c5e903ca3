//! gradient's release step: take an output folder that `gradient build` wrote, check every
//! file against its manifest, and hand the artifacts on to where their users fetch them —
//! an image registry, a package index, apt and yum repositories in the folder — signed and
//! with provenance; and check all of that again, offline, with `gradient verify`.
//!
//! Each destination is a module of its own; [`keys`] holds the two kinds of signing key
//! (OpenPGP for what Debian and RPM tooling checks, ECDSA P-256 for images and
//! attestations, in the formats cosign reads).

pub mod apt;
pub mod folder;
pub mod index;
pub mod keys;
pub mod provenance;
pub mod publish;
pub mod registry;
pub mod repo;
pub mod rpmsign;
pub mod sign;
pub mod verify;
pub mod yum;

/// What a destination did with one thing it was given: sent it, or found it already there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// What was sent (`sampleapp-1.2.3-py3-none-any.whl`, `image sampleapp:1.2.3`).
    pub what: String,
    /// Where it went (a URL or a path), without credentials.
    pub to: String,
    /// The digest the destination acknowledged (or that it already held).
    pub digest: String,
    /// False when the destination already had it and nothing was sent.
    pub sent: bool,
}

/// Why a release step failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Folder(#[from] folder::FolderError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error(transparent)]
    Apt(#[from] apt::AptError),
    #[error(transparent)]
    Yum(#[from] yum::YumError),
    #[error("{flag} was given, but the folder holds no {what} (build the {tiers} tier first)")]
    NothingFor {
        flag: &'static str,
        what: &'static str,
        tiers: &'static str,
    },
    #[error("`{}` is not an rpm gradient can sign ({reason})", path.display())]
    Rpm {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReleaseError {
    /// A mapper of an I/O error on `path` while doing `action`.
    pub fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> ReleaseError {
        let path = path.to_path_buf();
        move |source| ReleaseError::Io {
            action,
            path,
            source,
        }
    }
}

impl gradient_core::Hint for ReleaseError {
    fn hint(&self) -> Option<String> {
        match self {
            ReleaseError::Folder(e) => e.hint(),
            ReleaseError::Key(e) => e.hint(),
            ReleaseError::Registry(e) => e.hint(),
            ReleaseError::Index(e) => e.hint(),
            ReleaseError::Apt(e) => e.hint(),
            ReleaseError::Yum(e) => e.hint(),
            ReleaseError::NothingFor { tiers, .. } => Some(format!(
                "`gradient build --to {tiers}` into the same folder, or leave the flag out"
            )),
            ReleaseError::Io { .. } | ReleaseError::Rpm { .. } => None,
        }
    }
}
