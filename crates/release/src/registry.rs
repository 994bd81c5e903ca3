//! Images to a registry over the OCI distribution API, without a daemon; and the
//! signatures, attestations and SBOMs that go beside them, in the formats cosign writes.
//!
//! ```text
//!  Destination::parse("HOST[:PORT]/REPO")      checked before any request
//!  plan(tarball, dest, tags)                   offline: what would go where (dry run)
//!  push(tarball, dest, tags, options)          blobs (HEAD, else POST + PATCH… + PUT ?digest=),
//!                                              manifests children first, by digest; then tags
//!  attach(dest, digest, attachments, options)  .sig / .att / .sbom tags, and OCI 1.1 referrers
//!                                              (with the `sha256-HEX` index where the registry
//!                                              has no referrers API)
//!  fetch_attachments(image, options)           what `gradient verify IMAGE` checks offline
//! ```
//!
//! The modules, in the order data flows: [`name`] checks names; [`layout`] reads the image
//! tarball; [`credentials`] finds what to log in with; [`client`] opens a session with one
//! registry (scheme, retries), [`auth`] answers its challenges, [`api`] holds its requests;
//! [`push`] and [`attach`] send; [`fetch`] reads attachments back.
//!
//! Nothing is half-tagged: tags are written only after every blob and manifest is in, and
//! a rerun sends nothing the registry holds (each blob, manifest and tag is looked up
//! first). No message quotes a password, a token or an `Authorization` header.

pub mod api;
pub mod attach;
pub mod auth;
pub mod client;
pub mod credentials;
pub mod fetch;
pub mod layout;
pub mod name;
pub mod push;

pub use attach::{attach, Attachments, Attestation};
pub use fetch::{fetch_attachments, Fetched, FetchedAttestation, FetchedSignature};
pub use name::{Destination, ImageReference};
pub use push::{plan, push, PushedImage};

use std::path::PathBuf;

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Allow plain http, and https with a certificate that does not check, for any host
    /// (`--insecure`). Without it, only loopback hosts fall back to plain http, after https
    /// failed, as Docker does.
    pub insecure: bool,
    /// A PEM file of CA certificates trusted besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// The size of upload chunks (8 MiB when unset).
    pub chunk_size: Option<u64>,
    /// Repositories of the same registry that may hold the image's blobs (another
    /// variant of the app, the previous repository name): a blob missing in the
    /// destination is mounted from them, without sending its bytes, when the registry can.
    pub mount_from: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{given}` is not an image destination: {reason}")]
    BadDestination { given: String, reason: String },
    #[error("the tag is refused: {reason}")]
    BadTag { reason: String },
    #[error("the image tarball `{}` cannot be pushed: {reason}", path.display())]
    Tarball { path: PathBuf, reason: String },
    #[error("the content to send is not what its descriptor says: {reason}")]
    BadContent { reason: String },
    #[error("the CA file `{}` cannot be used: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
    #[error("the registry credentials from {origin} cannot be used: {reason}")]
    Credentials { origin: String, reason: String },
    #[error("cannot reach `{url}` ({attempts} attempts): {reason}")]
    Connect {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("the registry answered {status} when asked to {action} `{url}`: {message}")]
    Status {
        action: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error(
        "the registry {registry} refused access ({status}) at `{url}` with {origin}: {message}"
    )]
    Auth {
        registry: String,
        url: String,
        status: u16,
        message: String,
        origin: String,
    },
    #[error("refusing plain http to `{url}`: only loopback registries, or --insecure, allow it")]
    Insecure { url: String },
    #[error("`{url}` acknowledged {found}, where {expected} was sent or asked for")]
    Mismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error("{reference} is not in the registry")]
    NotFound { reference: String },
}

impl gradient_core::Hint for RegistryError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            RegistryError::BadDestination { .. } => {
                "give --image HOST[:PORT]/REPOSITORY, e.g. 127.0.0.1:5000/team/app".into()
            }
            RegistryError::BadTag { .. } => {
                "a tag is up to 128 of A-Z a-z 0-9 _ . - and starts with a letter, digit or _"
                    .into()
            }
            RegistryError::Tarball { .. } => {
                "push the image tarball `gradient build` wrote (the oci tier); build it again if it was changed".into()
            }
            RegistryError::BadContent { .. } => {
                "build the image again: its tarball was changed after it was written".into()
            }
            RegistryError::Tls { .. } => "give a readable PEM file of CA certificates".into(),
            RegistryError::Credentials { .. } => format!(
                "set {} and {}, or `docker login` the registry",
                credentials::USERNAME_VAR,
                credentials::PASSWORD_VAR
            ),
            RegistryError::Connect { .. } => {
                "check that the registry runs and the host and port are right; for a certificate your own CA signed, give that CA's PEM file; for a registry without TLS on another host, pass --insecure".into()
            }
            RegistryError::Status { status, .. } if *status == 429 || *status >= 500 => {
                "the registry is failing or busy: try again later".into()
            }
            RegistryError::Status { .. } => return None,
            RegistryError::Auth { .. } => format!(
                "check the user and password ({} and {}, or `docker login`) and that they may push to this repository",
                credentials::USERNAME_VAR,
                credentials::PASSWORD_VAR
            ),
            RegistryError::Insecure { .. } => {
                "use https, or pass --insecure for a registry you trust on your network".into()
            }
            RegistryError::Mismatch { .. } => {
                "the registry or something between it and gradient changed the content: check the registry and any proxy".into()
            }
            RegistryError::NotFound { .. } => {
                "push the image first, or check the name and tag".into()
            }
        })
    }
}
