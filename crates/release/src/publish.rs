//! `gradient publish DIR`: the release of one checked output folder, step by step — sign
//! the folder (`SHA256SUMS.asc`, provenance), write the apt and yum repositories into it,
//! upload the wheel and sdist to a package index, push the image to a registry with its
//! signature, provenance and SBOM attached. Each step says what it sent where; a rerun sends
//! nothing that is already there.

use crate::folder::Folder;
use crate::index::{self, IndexOptions};
use crate::keys::SigningKeys;
use crate::registry::{self, Destination, RegistryOptions};
use crate::{apt, yum};
use crate::{provenance, sign, ReleaseError, Sent};
use gradient_core::Tier;
use gradient_driver::manifest::ArtifactRecord;
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

impl PublishOptions {
    fn index(&self) -> IndexOptions {
        IndexOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            ..IndexOptions::default()
        }
    }

    fn registry(&self) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            ..RegistryOptions::default()
        }
    }
}

/// The folder's image tarball (the oci and docker tiers write the same one).
fn image_artifact(folder: &Folder) -> Result<&ArtifactRecord, ReleaseError> {
    folder
        .artifacts(Tier::Oci)
        .chain(folder.artifacts(Tier::Docker))
        .next()
        .ok_or(ReleaseError::NothingFor {
            flag: "--image",
            what: "image",
            tiers: "oci",
        })
}

/// The image's destination, tarball and the tags it was built with.
fn image_push<'a>(
    folder: &'a Folder,
    image: &str,
) -> Result<(Destination, PathBuf, Vec<String>, &'a ArtifactRecord), ReleaseError> {
    let destination = Destination::parse(image)?;
    let artifact = image_artifact(folder)?;
    let tarball = folder.path(&artifact.file);
    let tags = registry::layout::Tarball::open(&tarball)?.tags()?;
    Ok((destination, tarball, tags, artifact))
}

/// What a publish would do, in order, without doing any of it. Names and the image
/// tarball are checked; nothing is sent and no destination is asked.
pub fn steps(folder: &Folder, options: &PublishOptions) -> Result<Vec<Step>, ReleaseError> {
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
    if options.repositories {
        for (tier, dir) in [(Tier::Deb, apt::DIR), (Tier::Rpm, yum::DIR)] {
            for artifact in folder.artifacts(tier) {
                steps.push(Step {
                    what: artifact.file.clone(),
                    to: folder.dir.join(dir).display().to_string(),
                });
            }
        }
    }
    if let Some(url) = &options.index {
        steps.extend(
            index::plan(folder, url, &options.index())?
                .into_iter()
                .map(|planned| Step {
                    what: format!("{} ({})", planned.file, planned.filetype),
                    to: planned.to,
                }),
        );
    }
    if let Some(image) = &options.image {
        let (destination, tarball, tags, _) = image_push(folder, image)?;
        let plan = registry::plan(&tarball, &destination, &tags)?;
        steps.extend(plan.items.into_iter().map(|item| Step {
            what: item.what,
            to: item.to,
        }));
        let mut attached = vec!["SBOM (cosign .sbom, OCI referrer)"];
        if options.keys.ecdsa.is_some() {
            attached.splice(
                0..0,
                [
                    "signature (cosign .sig, OCI referrer)",
                    "provenance (cosign .att, OCI referrer)",
                ],
            );
        }
        for what in attached {
            steps.push(Step {
                what: what.to_string(),
                to: format!("{}@{}", destination.name(), plan.digest),
            });
        }
    }
    Ok(steps)
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
    if options.repositories {
        let signer = options.keys.pgp.as_ref();
        if folder.artifacts(Tier::Deb).next().is_some() {
            say("writing the apt repository");
            let repository = apt::write(folder, &folder.dir, signer)?;
            repository.notes.iter().for_each(|note| say(note));
            sent.extend(repository.sent);
        }
        if folder.artifacts(Tier::Rpm).next().is_some() {
            say("writing the yum repository");
            let repository = yum::write(folder, &folder.dir, signer)?;
            repository.notes.iter().for_each(|note| say(note));
            sent.extend(repository.sent);
        }
    }
    if let Some(url) = &options.index {
        say(&format!("uploading the wheel and sdist to {url}"));
        sent.extend(index::upload(folder, url, &options.index()).await?);
    }
    if let Some(image) = &options.image {
        sent.extend(push_image(folder, image, options, say).await?);
    }
    Ok(sent)
}

/// Push the image, then attach its SBOM and, with an ECDSA key, its signature and
/// provenance (a statement whose subject is the image's digest).
async fn push_image(
    folder: &Folder,
    image: &str,
    options: &PublishOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Sent>, ReleaseError> {
    let (destination, tarball, tags, artifact) = image_push(folder, image)?;
    let registry_options = options.registry();
    say(&format!(
        "pushing {} to {}",
        artifact.file,
        destination.name()
    ));
    let pushed = registry::push(&tarball, &destination, &tags, &registry_options).await?;
    let mut sent = pushed.items;
    let digest_hex = pushed.digest.trim_start_matches("sha256:").to_string();
    let attestations = match &options.keys.ecdsa {
        Some(key) => {
            let statement =
                provenance::statement(&folder.manifest, &[(destination.name(), digest_hex)]);
            vec![registry::Attestation {
                envelope: provenance::envelope(&statement, key).into_bytes(),
                predicate_type: provenance::PREDICATE_TYPE.to_string(),
            }]
        }
        None => Vec::new(),
    };
    let sbom = match &artifact.sbom {
        Some(sbom) => {
            let path = folder.path(&sbom.file);
            Some(std::fs::read(&path).map_err(ReleaseError::io("read", &path))?)
        }
        None => None,
    };
    say(&format!("attaching to {}", pushed.reference));
    let attachments = registry::Attachments {
        signer: options.keys.ecdsa.as_ref(),
        attestations,
        sbom,
    };
    sent.extend(
        registry::attach(
            &destination,
            &pushed.digest,
            &attachments,
            &registry_options,
        )
        .await?,
    );
    Ok(sent)
}
