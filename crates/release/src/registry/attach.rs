//! Signatures, attestations and SBOMs beside an image, stored as cosign stores them
//! (fetched back by [`super::fetch`]).
//!
//! Each kind goes to two places:
//! - cosign's tag scheme: an image manifest under the tag `sha256-HEX.sig` (`.att`,
//!   `.sbom`) of the image's digest, whose layers are the payloads: the simple-signing
//!   payload (`application/vnd.dev.cosign.simplesigning.v1+json`, the base64 DER signature
//!   in the annotation `dev.cosignproject.cosign/signature`), the DSSE envelope
//!   (`application/vnd.dsse.envelope.v1+json`, annotation `predicateType`), the CycloneDX
//!   document (`application/vnd.cyclonedx+json`). Signatures and attestations already
//!   there are kept (another key's signature stays); an SBOM replaces the one before.
//! - OCI 1.1 referrers: the same payloads in an artifact manifest with an `artifactType`,
//!   the empty config and a `subject` naming the image. A registry with the referrers API
//!   indexes it; for one without (its `GET /v2/NAME/referrers/DIGEST` is a 404), the image
//!   index under the tag `sha256-HEX` lists the referrers, as the distribution spec's
//!   fallback says.

use super::client::Session;
use super::layout::{OCI_INDEX, OCI_MANIFEST};
use super::{Destination, RegistryError, RegistryOptions};
use crate::keys::EcdsaSigner;
use crate::Sent;
use base64::Engine;
use serde_json::{json, Map, Value};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const PREDICATE_ANNOTATION: &str = "predicateType";
pub const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
/// The artifact type of a cosign signature stored as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const COSIGN_TYPE: &str = "cosign container image signature";

/// What to attach to an image.
#[derive(Default)]
pub struct Attachments<'a> {
    /// Sign the image's digest (a simple-signing payload) with this key.
    pub signer: Option<&'a EcdsaSigner>,
    /// DSSE envelopes, e.g. the SLSA provenance, as the caller signed them.
    pub attestations: Vec<Attestation>,
    /// A CycloneDX JSON document.
    pub sbom: Option<Vec<u8>>,
}

/// A DSSE envelope and the predicate type of the statement inside it.
#[derive(Clone, Debug)]
pub struct Attestation {
    pub envelope: Vec<u8>,
    pub predicate_type: String,
}

/// One payload of an attachment: a layer of its manifest.
struct Payload {
    bytes: Vec<u8>,
    media_type: &'static str,
    annotations: Map<String, Value>,
}

impl Payload {
    fn digest(&self) -> String {
        format!(
            "sha256:{}",
            gradient_driver::publish::sha256_hex(&self.bytes)
        )
    }

    fn descriptor(&self) -> Value {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
        });
        if !self.annotations.is_empty() {
            d["annotations"] = Value::Object(self.annotations.clone());
        }
        d
    }
}

/// The simple-signing payload that says `destination` is the image `digest`, as cosign
/// signs it (keys sorted; `optional` null).
pub fn simple_signing_payload(destination: &Destination, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": destination.name()},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": null,
    }))
    .expect("JSON serialises")
}

/// `sha256-HEX`, the tag-scheme form of a digest.
pub(crate) fn digest_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON serialises")
}

pub(crate) fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", gradient_driver::publish::sha256_hex(bytes))
}

/// Attach `attachments` to the image `digest` in `destination` (pushed before). Returns
/// what was sent, and what was found already there.
pub async fn attach(
    destination: &Destination,
    digest: &str,
    attachments: &Attachments<'_>,
    options: &RegistryOptions,
) -> Result<Vec<Sent>, RegistryError> {
    super::name::check_digest(digest).map_err(|reason| RegistryError::BadDestination {
        given: digest.to_string(),
        reason,
    })?;
    let session = Session::open(destination, options).await?;
    let name = destination.name();
    let (subject_bytes, subject_type) =
        session
            .get_manifest(digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                reference: format!("{name}@{digest}"),
            })?;
    let subject = json!({
        "mediaType": subject_type,
        "digest": digest,
        "size": subject_bytes.len(),
    });
    // The kinds, each with its tag suffix, artifact type and payloads.
    let mut kinds: Vec<(&str, &str, Vec<Payload>)> = Vec::new();
    if let Some(signer) = attachments.signer {
        let payload = simple_signing_payload(destination, digest);
        let signature = signer.sign(&payload);
        let mut annotations = Map::new();
        annotations.insert(
            SIGNATURE_ANNOTATION.into(),
            json!(base64::engine::general_purpose::STANDARD.encode(signature)),
        );
        kinds.push((
            "sig",
            SIGNATURE_ARTIFACT,
            vec![Payload {
                bytes: payload,
                media_type: SIMPLE_SIGNING,
                annotations,
            }],
        ));
    }
    if !attachments.attestations.is_empty() {
        let payloads = attachments
            .attestations
            .iter()
            .map(|a| {
                let mut annotations = Map::new();
                annotations.insert(PREDICATE_ANNOTATION.into(), json!(a.predicate_type));
                Payload {
                    bytes: a.envelope.clone(),
                    media_type: DSSE_ENVELOPE,
                    annotations,
                }
            })
            .collect();
        kinds.push(("att", DSSE_ENVELOPE, payloads));
    }
    if let Some(sbom) = &attachments.sbom {
        kinds.push((
            "sbom",
            CYCLONEDX,
            vec![Payload {
                bytes: sbom.clone(),
                media_type: CYCLONEDX,
                annotations: Map::new(),
            }],
        ));
    }

    let mut items = Vec::new();
    let mut referrers: Vec<Value> = Vec::new();
    let mut indexed_by_registry = false;
    for (suffix, artifact_type, payloads) in &kinds {
        for payload in payloads {
            ensure_blob(&session, &payload.bytes, &mut items, &name, "payload").await?;
        }
        // cosign's tag scheme.
        let tag = format!("{}.{suffix}", digest_tag(digest));
        let mut layers: Vec<Value> = Vec::new();
        if *suffix != "sbom" {
            if let Some((bytes, _)) = session.get_manifest(&tag).await? {
                let old: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                layers.extend(old["layers"].as_array().into_iter().flatten().cloned());
            }
        }
        for payload in payloads {
            let descriptor = payload.descriptor();
            if !layers.contains(&descriptor) {
                layers.push(descriptor);
            }
        }
        let config = json_bytes(&json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>(),
            },
        }));
        let manifest = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": sha(&config), "size": config.len()},
            "layers": layers,
        }));
        ensure_blob(&session, &config, &mut items, &name, "config").await?;
        ensure_manifest(
            &session,
            &manifest,
            &mut items,
            &name,
            &format!("{suffix} manifest"),
        )
        .await?;
        let current = session.manifest_digest(&tag).await?;
        let manifest_digest = sha(&manifest);
        let same = current.as_deref() == Some(manifest_digest.as_str());
        if !same {
            session
                .put_manifest(&tag, OCI_MANIFEST, &manifest, &manifest_digest)
                .await?;
        }
        items.push(Sent {
            what: format!("tag {tag}"),
            to: format!("{name}:{tag}"),
            digest: manifest_digest,
            sent: !same,
        });

        // OCI 1.1 referrers: one artifact per payload.
        ensure_blob(&session, b"{}", &mut items, &name, "empty config").await?;
        for payload in payloads {
            let mut manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": EMPTY, "digest": sha(b"{}"), "size": 2},
                "layers": [payload.descriptor()],
                "subject": subject,
            });
            if !payload.annotations.is_empty() && *suffix == "att" {
                manifest["annotations"] = Value::Object(payload.annotations.clone());
            }
            let bytes = json_bytes(&manifest);
            let took_subject = ensure_manifest(
                &session,
                &bytes,
                &mut items,
                &name,
                &format!("{suffix} referrer"),
            )
            .await?;
            indexed_by_registry |= took_subject;
            let mut descriptor = json!({
                "mediaType": OCI_MANIFEST,
                "digest": sha(&bytes),
                "size": bytes.len(),
                "artifactType": artifact_type,
            });
            if let Some(annotations) = manifest.get("annotations") {
                descriptor["annotations"] = annotations.clone();
            }
            referrers.push(descriptor);
        }
    }
    if !referrers.is_empty() && !indexed_by_registry && session.referrers(digest).await?.is_none() {
        // The fallback: the index under `sha256-HEX`, with what it listed kept.
        let tag = digest_tag(digest);
        let mut listed: Vec<Value> = match session.get_manifest(&tag).await? {
            Some((bytes, _)) => serde_json::from_slice::<Value>(&bytes).unwrap_or_default()
                ["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for descriptor in referrers {
            if !listed.iter().any(|d| d["digest"] == descriptor["digest"]) {
                listed.push(descriptor);
            }
        }
        let index = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": listed,
        }));
        let index_digest = sha(&index);
        let current = session.manifest_digest(&tag).await?;
        let same = current.as_deref() == Some(index_digest.as_str());
        if !same {
            session
                .put_manifest(&tag, OCI_INDEX, &index, &index_digest)
                .await?;
        }
        items.push(Sent {
            what: format!("referrers index (tag {tag})"),
            to: format!("{name}:{tag}"),
            digest: index_digest,
            sent: !same,
        });
    }
    Ok(items)
}

async fn ensure_blob(
    session: &Session,
    bytes: &[u8],
    items: &mut Vec<Sent>,
    name: &str,
    what: &str,
) -> Result<(), RegistryError> {
    let digest = sha(bytes);
    if items.iter().any(|i| i.digest == digest) {
        return Ok(());
    }
    let present = session.has_blob(&digest).await?;
    if !present {
        let read = |start: u64, len: u64| -> Result<Vec<u8>, RegistryError> {
            let start = start as usize;
            let end = (start + len as usize).min(bytes.len());
            Ok(bytes[start..end].to_vec())
        };
        session
            .upload_blob(
                &digest,
                bytes.len() as u64,
                bytes.len().max(1) as u64,
                &[],
                &read,
            )
            .await?;
    }
    items.push(Sent {
        what: format!("{what} blob ({} bytes)", bytes.len()),
        to: format!("{name}@{digest}"),
        digest,
        sent: !present,
    });
    Ok(())
}

/// Put a manifest by digest unless the registry holds it; whether the registry said it
/// took its subject into its referrers.
async fn ensure_manifest(
    session: &Session,
    bytes: &[u8],
    items: &mut Vec<Sent>,
    name: &str,
    what: &str,
) -> Result<bool, RegistryError> {
    let digest = sha(bytes);
    let present = session.manifest_digest(&digest).await?.is_some();
    let mut took_subject = false;
    if !present {
        took_subject = session
            .put_manifest(&digest, OCI_MANIFEST, bytes, &digest)
            .await?;
    }
    items.push(Sent {
        what: what.to_string(),
        to: format!("{name}@{digest}"),
        digest,
        sent: !present,
    });
    Ok(took_subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_the_image_as_cosign_does() {
        let destination = Destination::parse("127.0.0.1:5000/team/app").unwrap();
        let digest = format!("sha256:{}", "ab".repeat(32));
        let payload = simple_signing_payload(&destination, &digest);
        let parsed: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            parsed["critical"]["identity"]["docker-reference"],
            "127.0.0.1:5000/team/app"
        );
        assert_eq!(
            parsed["critical"]["image"]["docker-manifest-digest"],
            digest.as_str()
        );
        assert_eq!(parsed["critical"]["type"], COSIGN_TYPE);
        let found = crate::registry::FetchedSignature {
            payload,
            signature: Vec::new(),
        };
        assert_eq!(found.signed_digest(), Some(digest.clone()));
        assert_eq!(digest_tag(&digest), format!("sha256-{}", "ab".repeat(32)));
    }
}
