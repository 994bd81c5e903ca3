//! What `gradient verify IMAGE` checks, fetched: an image's digest, and the signatures,
//! attestations and SBOMs attached to it, from cosign's tags (`sha256-HEX.sig`, `.att`,
//! `.sbom`) and from its OCI 1.1 referrers (the referrers API, else the `sha256-HEX`
//! index). Each payload is checked against its digest; nothing against a key: that is
//! the caller's, offline.

use super::attach::{
    digest_tag, sha, COSIGN_TYPE, CYCLONEDX, DSSE_ENVELOPE, PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING,
};
use super::client::Session;
use super::layout::descriptor_digest;
use super::{ImageReference, RegistryError, RegistryOptions};
use crate::keys::VerifyingKeys;
use base64::Engine;
use serde_json::Value;

/// A signature found beside an image: the payload and the DER signature over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedSignature {
    pub payload: Vec<u8>,
    /// ASN.1 DER, as [`crate::keys::VerifyingKeys::ecdsa_holds`] takes it.
    pub signature: Vec<u8>,
}

impl FetchedSignature {
    /// The digest the payload says it signs (`critical.image.docker-manifest-digest`),
    /// when it is a cosign simple-signing payload.
    pub fn signed_digest(&self) -> Option<String> {
        let payload: Value = serde_json::from_slice(&self.payload).ok()?;
        if payload["critical"]["type"] != COSIGN_TYPE {
            return None;
        }
        payload["critical"]["image"]["docker-manifest-digest"]
            .as_str()
            .map(str::to_string)
    }
}

impl FetchedSignature {
    /// Whether one of `keys` signed this payload and the payload names the image `digest`:
    /// a signature over another image's payload, copied beside this one, does not hold.
    pub fn holds_for(&self, keys: &VerifyingKeys, digest: &str) -> bool {
        self.signed_digest().as_deref() == Some(digest)
            && keys.ecdsa_holds(&self.payload, &self.signature)
    }
}

/// An attestation found beside an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedAttestation {
    pub envelope: Vec<u8>,
    pub predicate_type: Option<String>,
}

/// What [`fetch_attachments`] found, each payload checked against its digest.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// The image's digest: the SHA-256 of the manifest the registry served.
    pub digest: String,
    pub signatures: Vec<FetchedSignature>,
    pub attestations: Vec<FetchedAttestation>,
    pub sboms: Vec<Vec<u8>>,
}

/// The most referrers of one image read: a registry cannot keep verify fetching forever.
const MAX_REFERRERS: usize = 64;
/// The most payloads read from one attachment manifest.
const MAX_LAYERS: usize = 16;

/// The digest of `image` and every signature, attestation and SBOM attached to it, from
/// cosign's tags and from the referrers (the API, else the `sha256-HEX` index), each once.
/// Nothing is checked against a key here: `gradient verify` does that, offline.
pub async fn fetch_attachments(
    image: &ImageReference,
    options: &RegistryOptions,
) -> Result<Fetched, RegistryError> {
    let session = Session::open(&image.destination, options).await?;
    let (bytes, _) = session
        .get_manifest(image.reference())
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            reference: image.to_string(),
        })?;
    let digest = sha(&bytes);
    // Cosign's tags name the image by their own name; a referrer must name it as its
    // subject, or it is another image's and is left out.
    let mut manifests: Vec<Vec<u8>> = Vec::new();
    for suffix in ["sig", "att", "sbom"] {
        if let Some((bytes, _)) = session
            .get_manifest(&format!("{}.{suffix}", digest_tag(&digest)))
            .await?
        {
            manifests.push(bytes);
        }
    }
    let listing = match session.referrers(&digest).await? {
        Some(listing) => Some(listing),
        None => session
            .get_manifest(&digest_tag(&digest))
            .await?
            .map(|(bytes, _)| bytes),
    };
    if let Some(listing) = listing {
        let listing: Value = serde_json::from_slice(&listing).unwrap_or_default();
        let descriptors = listing["manifests"].as_array().into_iter().flatten();
        for descriptor in descriptors.take(MAX_REFERRERS) {
            let Ok((referrer, _)) = descriptor_digest(descriptor) else {
                continue;
            };
            if let Some((bytes, _)) = session.get_manifest(&referrer).await? {
                let parsed: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if parsed["subject"]["digest"].as_str() == Some(digest.as_str()) {
                    manifests.push(bytes);
                }
            }
        }
    }
    let mut fetched = Fetched {
        digest,
        ..Fetched::default()
    };
    for manifest in manifests {
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or_default();
        let layers = manifest["layers"].as_array().into_iter().flatten();
        for layer in layers.take(MAX_LAYERS) {
            let Ok((layer_digest, _)) = descriptor_digest(layer) else {
                continue;
            };
            let media_type = layer["mediaType"].as_str().unwrap_or_default();
            if ![SIMPLE_SIGNING, DSSE_ENVELOPE, CYCLONEDX].contains(&media_type) {
                continue;
            }
            let payload = session.get_blob(&layer_digest).await?;
            match media_type {
                SIMPLE_SIGNING => {
                    let Some(encoded) = layer["annotations"][SIGNATURE_ANNOTATION].as_str() else {
                        continue;
                    };
                    // A signature that is not base64 is kept as it is: it will not verify.
                    let signature = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
                    let found = FetchedSignature { payload, signature };
                    if !fetched.signatures.contains(&found) {
                        fetched.signatures.push(found);
                    }
                }
                DSSE_ENVELOPE => {
                    let found = FetchedAttestation {
                        envelope: payload,
                        predicate_type: layer["annotations"][PREDICATE_ANNOTATION]
                            .as_str()
                            .map(str::to_string),
                    };
                    if !fetched.attestations.contains(&found) {
                        fetched.attestations.push(found);
                    }
                }
                _ => {
                    if !fetched.sboms.contains(&payload) {
                        fetched.sboms.push(payload);
                    }
                }
            }
        }
    }
    Ok(fetched)
}
