//! `gradient verify DIR`: every check a user of the release can make, offline, against the
//! public keys they trust — each file against the manifest, `SHA256SUMS` and its signature,
//! the provenance's signature and subjects, the apt and yum repositories' signatures and
//! indexes — each said per subject, so a tampered byte is named where it is.

use crate::keys::VerifyingKeys;
use crate::sign::SUMS_SIGNATURE;
use crate::{provenance, ReleaseError};
use gradient_driver::manifest::{Manifest, SUMS_FILE};
use gradient_driver::merge::read_manifest;
use gradient_driver::publish::file_digest;
use std::collections::BTreeMap;
use std::path::Path;

/// One check of one subject.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked: a file name, `apt/InRelease`, …
    pub subject: String,
    /// Which property: `digest`, `signature`, `provenance`, `index`.
    pub property: &'static str,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Holds(String),
    Fails(String),
    /// Not checked, with why (no key of that kind was given).
    Unchecked(String),
}

impl Check {
    fn new(subject: impl Into<String>, property: &'static str, outcome: Outcome) -> Check {
        Check {
            subject: subject.into(),
            property,
            outcome,
        }
    }

    pub fn fails(&self) -> bool {
        matches!(self.outcome, Outcome::Fails(_))
    }
}

/// Check the folder `dir` against `keys`.
pub fn verify_folder(dir: &Path, keys: &VerifyingKeys) -> Result<Vec<Check>, ReleaseError> {
    let manifest = read_manifest(dir).map_err(crate::folder::FolderError::from)?;
    let mut checks = Vec::new();
    let actual = check_digests(dir, &manifest, &mut checks);
    check_sums(dir, &manifest, keys, &mut checks);
    check_provenance(dir, &manifest, &actual, keys, &mut checks);
    checks.extend(crate::apt::verify(dir, keys));
    checks.extend(crate::yum::verify(dir, keys));
    Ok(checks)
}

/// Each listed file against its recorded digest; returns the digests found.
fn check_digests(
    dir: &Path,
    manifest: &Manifest,
    checks: &mut Vec<Check>,
) -> BTreeMap<String, String> {
    let mut actual = BTreeMap::new();
    let listed: BTreeMap<&str, &str> = manifest.listed_files().into_iter().collect();
    for (file, recorded) in listed {
        let outcome = match file_digest(&dir.join(file)) {
            Ok(digest) if digest == recorded => {
                actual.insert(file.to_string(), digest.clone());
                Outcome::Holds(format!("sha256 {digest}, as the manifest records"))
            }
            Ok(digest) => {
                actual.insert(file.to_string(), digest.clone());
                Outcome::Fails(format!("sha256 {digest}, the manifest records {recorded}"))
            }
            Err(e) => Outcome::Fails(format!("cannot be read: {e}")),
        };
        checks.push(Check::new(file, "digest", outcome));
    }
    actual
}

/// `SHA256SUMS` says what the manifest says, and its signature holds.
fn check_sums(dir: &Path, manifest: &Manifest, keys: &VerifyingKeys, checks: &mut Vec<Check>) {
    let sums = std::fs::read(dir.join(SUMS_FILE));
    let outcome = match &sums {
        Ok(bytes) if *bytes == manifest.sha256sums().as_bytes() => {
            Outcome::Holds("lists what the manifest lists".into())
        }
        Ok(_) => Outcome::Fails("differs from the manifest's digests".into()),
        Err(e) => Outcome::Fails(format!("cannot be read: {e}")),
    };
    checks.push(Check::new(SUMS_FILE, "digest", outcome));
    let signature = std::fs::read_to_string(dir.join(SUMS_SIGNATURE));
    let outcome = match (signature, keys.pgp.is_empty()) {
        (Err(_), true) => return,
        (Err(_), false) => Outcome::Fails(format!(
            "{SUMS_SIGNATURE} is missing: the folder is not signed"
        )),
        (Ok(_), true) => Outcome::Unchecked("no OpenPGP public key was given".into()),
        (Ok(signature), false) => match &sums {
            Ok(bytes) if keys.pgp_detached_holds(bytes, &signature) => {
                Outcome::Holds("OpenPGP signature by the given key".into())
            }
            _ => Outcome::Fails("the OpenPGP signature does not hold over SHA256SUMS".into()),
        },
    };
    checks.push(Check::new(SUMS_SIGNATURE, "signature", outcome));
}

/// The provenance's envelopes are signed by the key, and their subjects are exactly the
/// folder's files with the digests found.
fn check_provenance(
    dir: &Path,
    manifest: &Manifest,
    actual: &BTreeMap<String, String>,
    keys: &VerifyingKeys,
    checks: &mut Vec<Check>,
) {
    let name = provenance::file_name(manifest);
    let text = match std::fs::read_to_string(dir.join(&name)) {
        Ok(text) => text,
        Err(_) if keys.ecdsa.is_empty() => return,
        Err(_) => {
            checks.push(Check::new(
                &name,
                "signature",
                Outcome::Fails("the provenance is missing: the folder is not attested".into()),
            ));
            return;
        }
    };
    if keys.ecdsa.is_empty() {
        checks.push(Check::new(
            &name,
            "signature",
            Outcome::Unchecked("no ECDSA public key was given".into()),
        ));
        return;
    }
    // Every digest each signed envelope gives a file: they must all agree, so an old
    // release's envelope appended cannot vouch for an old file put back.
    let mut covered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let project = &manifest.project;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        checks.push(Check::new(
            &name,
            "signature",
            Outcome::Fails("holds no envelope".into()),
        ));
    }
    for (n, line) in lines.iter().enumerate() {
        let subject = format!("{name}:{}", n + 1);
        match provenance::open_envelope(line, keys) {
            Ok(statement) => {
                let params = &statement["predicate"]["buildDefinition"]["externalParameters"];
                let (attested_name, attested_version) = (
                    params["project"]["name"].as_str().unwrap_or_default(),
                    params["project"]["version"].as_str().unwrap_or_default(),
                );
                if (attested_name, attested_version)
                    != (project.name.as_str(), project.version.as_str())
                {
                    checks.push(Check::new(
                        &subject,
                        "signature",
                        Outcome::Fails(format!(
                            "signed by the given key, but for {attested_name} {attested_version}, not {} {}",
                            project.name, project.version
                        )),
                    ));
                    continue;
                }
                checks.push(Check::new(
                    &subject,
                    "signature",
                    Outcome::Holds("DSSE envelope signed by the given key".into()),
                ));
                for (file, digest) in provenance::subjects(&statement) {
                    let digests = covered.entry(file).or_default();
                    if !digests.contains(&digest) {
                        digests.push(digest);
                    }
                }
            }
            Err(broken) => checks.push(Check::new(
                &subject,
                "signature",
                Outcome::Fails(broken.to_string()),
            )),
        }
    }
    for (file, digest) in actual {
        let outcome = match covered.get(file).map(Vec::as_slice) {
            Some([attested]) if attested == digest => {
                Outcome::Holds("the provenance attests this digest".into())
            }
            Some([attested]) => Outcome::Fails(format!(
                "the provenance attests sha256 {attested}, the file has {digest}"
            )),
            Some(several) => Outcome::Fails(format!(
                "the provenance's envelopes disagree on it (sha256 {})",
                several.join(", ")
            )),
            None => Outcome::Fails("the provenance does not name it".into()),
        };
        checks.push(Check::new(file, "provenance", outcome));
    }
    // A file attested but not in the folder: removed, together with its manifest record.
    let listed: Vec<&str> = manifest
        .listed_files()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    for file in covered.keys().filter(|f| !listed.contains(&f.as_str())) {
        checks.push(Check::new(
            file,
            "provenance",
            Outcome::Fails(
                "the provenance attests it, but the folder's manifest does not list it".into(),
            ),
        ));
    }
}

/// Check an image in a registry against `keys`: its signature names its digest and was
/// made by the ECDSA key, its provenance is signed and attests that digest, and an SBOM is
/// attached. Only the fetching goes over the network; every check is made here.
pub async fn verify_image(
    image: &crate::registry::ImageReference,
    keys: &VerifyingKeys,
    options: &crate::registry::RegistryOptions,
) -> Result<Vec<Check>, ReleaseError> {
    let fetched = crate::registry::fetch_attachments(image, options).await?;
    let subject = format!("{}@{}", image.destination.name(), fetched.digest);
    let mut checks = Vec::new();
    if keys.ecdsa.is_empty() {
        checks.push(Check::new(
            &subject,
            "signature",
            Outcome::Unchecked("no ECDSA public key was given".into()),
        ));
    } else {
        let outcome = if fetched
            .signatures
            .iter()
            .any(|s| s.holds_for(keys, &fetched.digest))
        {
            Outcome::Holds("a signature by the given key names this digest".into())
        } else if fetched.signatures.is_empty() {
            Outcome::Fails("no signature is attached".into())
        } else {
            Outcome::Fails(format!(
                "none of the {} signatures attached was made by the given key over this digest",
                fetched.signatures.len()
            ))
        };
        checks.push(Check::new(&subject, "signature", outcome));
        let hex = fetched.digest.trim_start_matches("sha256:");
        let attested = fetched.attestations.iter().any(|a| {
            std::str::from_utf8(&a.envelope)
                .ok()
                .and_then(|text| provenance::open_envelope(text.trim(), keys).ok())
                .is_some_and(|statement| {
                    provenance::subjects(&statement)
                        .iter()
                        .any(|(_, digest)| digest == hex)
                })
        });
        let outcome = if attested {
            Outcome::Holds("a provenance signed by the given key attests this digest".into())
        } else {
            Outcome::Fails(format!(
                "no attestation among the {} attached is signed by the given key and names this digest",
                fetched.attestations.len()
            ))
        };
        checks.push(Check::new(&subject, "provenance", outcome));
    }
    let outcome = match fetched.sboms.len() {
        0 => Outcome::Unchecked("no SBOM is attached".into()),
        // cosign attaches SBOMs unsigned: present and whole, but no key vouches for them.
        n => Outcome::Unchecked(format!(
            "{n} SBOM attached, matching its digest; unsigned, so not checked against a key"
        )),
    };
    checks.push(Check::new(&subject, "sbom", outcome));
    Ok(checks)
}
