//! Provenance: an in-toto Statement (v1) carrying the SLSA Provenance v1 predicate — what
//! was built, from which revision and lock, by which command and builder — over the digests
//! of the artifacts, signed in a DSSE envelope with the release's ECDSA key.
//!
//! The folder gets `NAME-VERSION.intoto.jsonl`, one envelope per line (the form SLSA's
//! verifiers read); an image gets the same statement over its manifest digest, attached in
//! the registry. ECDSA signing here is deterministic (RFC 6979), so the same folder and key
//! give the same bytes.

use crate::keys::{EcdsaSigner, VerifyingKeys};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use gradient_driver::manifest::Manifest;
use serde_json::{json, Value};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a gradient build is, for SLSA's `buildType` (a URI gradient defines; its parameters
/// are documented in docs/release.md).
pub const BUILD_TYPE: &str = "urn:gradient:build:v1";
/// Who built: gradient, run by whoever ran it (SLSA's `builder.id`).
pub const BUILDER_ID: &str = "urn:gradient:builder:local";

/// The file name of a folder's provenance.
pub fn file_name(manifest: &Manifest) -> String {
    format!(
        "{}-{}.intoto.jsonl",
        manifest.project.name, manifest.project.version
    )
}

/// An in-toto statement over `subjects` (name, sha256 hex), stating the build the manifest
/// records.
pub fn statement(manifest: &Manifest, subjects: &[(String, String)]) -> Value {
    let subject: Vec<Value> = subjects
        .iter()
        .map(|(name, sha256)| json!({"name": name, "digest": {"sha256": sha256}}))
        .collect();
    let build = manifest.build.as_ref();
    let mut dependencies = Vec::new();
    if let Some(revision) = build.and_then(|b| b.revision.as_ref()) {
        dependencies.push(json!({
            "name": "source",
            "digest": {"gitCommit": revision},
            "annotations": {"dirty": build.is_some_and(|b| b.dirty)},
        }));
    }
    if let Some(lock) = build.and_then(|b| b.lock.as_ref()) {
        dependencies.push(json!({"name": lock.file, "digest": {"sha256": lock.sha256}}));
    }
    for input in &manifest.inputs {
        dependencies.push(json!({"name": input.file, "digest": {"sha256": input.sha256}}));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "command": build.map(|b| b.command.clone()).unwrap_or_default(),
                    "project": {"name": manifest.project.name, "version": manifest.project.version},
                    "sourceDateEpoch": manifest.source_date.seconds,
                },
                "internalParameters": {
                    "python": {
                        "implementation": manifest.python.implementation,
                        "version": manifest.python.version,
                        "platform": manifest.python.platform_tag,
                    },
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"gradient": manifest.gradient_version},
                },
                "metadata": {},
            },
        },
    })
}

/// The folder's statement: every file its manifest lists (artifacts, SBOMs, the lock).
pub fn folder_statement(manifest: &Manifest) -> Value {
    // The oci and docker tiers list one tarball: each file once, by name.
    let subjects: std::collections::BTreeMap<String, String> = manifest
        .listed_files()
        .into_iter()
        .map(|(file, sha256)| (file.to_string(), sha256.to_string()))
        .collect();
    statement(manifest, &subjects.into_iter().collect::<Vec<_>>())
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// `statement` in a DSSE envelope signed by `key`, as one line of JSON.
pub fn envelope(statement: &Value, key: &EcdsaSigner) -> String {
    let payload = serde_json::to_vec(statement).expect("JSON serialises");
    let signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    serde_json::to_string(&json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": BASE64.encode(&payload),
        "signatures": [{"keyid": key.key_id(), "sig": BASE64.encode(signature)}],
    }))
    .expect("JSON serialises")
}

/// Why an envelope does not hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// Not a DSSE envelope of an in-toto statement.
    Malformed(String),
    /// No signature in it was made by one of the keys.
    Unsigned,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Malformed(why) => {
                write!(f, "not a DSSE envelope of an in-toto statement: {why}")
            }
            Broken::Unsigned => write!(f, "no signature in it was made by the given key"),
        }
    }
}

/// The statement an envelope carries, when one of `keys` signed it.
pub fn open_envelope(line: &str, keys: &VerifyingKeys) -> Result<Value, Broken> {
    let malformed = |why: &str| Broken::Malformed(why.to_string());
    let envelope: Value = serde_json::from_str(line).map_err(|_| malformed("not JSON"))?;
    let payload_type = envelope["payloadType"]
        .as_str()
        .ok_or_else(|| malformed("no payloadType"))?;
    if payload_type != PAYLOAD_TYPE {
        return Err(malformed("the payload is not an in-toto statement"));
    }
    let payload = envelope["payload"]
        .as_str()
        .and_then(|p| BASE64.decode(p).ok())
        .ok_or_else(|| malformed("the payload is not base64"))?;
    let signed = pae(payload_type, &payload);
    let signatures = envelope["signatures"]
        .as_array()
        .ok_or_else(|| malformed("no signatures"))?;
    let holds = signatures.iter().any(|s| {
        s["sig"]
            .as_str()
            .and_then(|sig| BASE64.decode(sig).ok())
            .is_some_and(|sig| keys.ecdsa_holds(&signed, &sig))
    });
    if !holds {
        return Err(Broken::Unsigned);
    }
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|_| malformed("the payload is not JSON"))?;
    if statement["_type"] != STATEMENT_TYPE {
        return Err(malformed("the payload is not an in-toto v1 statement"));
    }
    Ok(statement)
}

/// The statement's subjects, as (name, sha256 hex).
pub fn subjects(statement: &Value) -> Vec<(String, String)> {
    statement["subject"]
        .as_array()
        .map(|subjects| {
            subjects
                .iter()
                .filter_map(|s| {
                    Some((
                        s["name"].as_str()?.to_string(),
                        s["digest"]["sha256"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_authentication_encoding_is_dsse_v1s() {
        // DSSE's own worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
