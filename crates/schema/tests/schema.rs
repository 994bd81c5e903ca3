//! The documents' JSON Schema is pinned (an insta snapshot and the copies in `docs/schema/`),
//! and documents read as they were written, also when a newer gradient wrote them.

use gradient_core::Tier;
use gradient_schema::{manifest_schema, report_schema, Comparison, Manifest, Status};
use serde_json::Value;
use std::path::Path;

const MANIFEST: &str = include_str!("data/sampleapp-manifest.json");
const REPORT: &str = include_str!("data/sampleapp-report.json");

#[test]
fn the_json_schemas_are_pinned() {
    insta::assert_snapshot!("manifest.schema.json", manifest_schema());
    insta::assert_snapshot!("report.schema.json", report_schema());
}

/// `docs/schema/` holds the schemas as the types give them; `UPDATE_SNAPSHOTS=1` rewrites it.
#[test]
fn the_schemas_in_the_docs_are_the_generated_ones() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
    for (name, schema) in [
        ("manifest.schema.json", manifest_schema()),
        ("report.schema.json", report_schema()),
    ] {
        let path = docs.join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &schema).unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == schema,
            "docs/schema/{name} is not the schema the types give: run this test with UPDATE_SNAPSHOTS=1"
        );
    }
}

#[test]
fn a_manifest_reads_and_writes_back_byte_for_byte() {
    let manifest: Manifest = serde_json::from_str(MANIFEST).unwrap();
    assert_eq!(manifest.artifacts.len(), Tier::ALL.len());
    assert_eq!(serde_json::to_string_pretty(&manifest).unwrap(), MANIFEST);
}

#[test]
fn a_report_reads_and_writes_back_byte_for_byte_and_follows_from_its_manifest() {
    let report: Comparison = serde_json::from_str(REPORT).unwrap();
    assert_eq!(serde_json::to_string_pretty(&report).unwrap(), REPORT);
    let manifest: Manifest = serde_json::from_str(MANIFEST).unwrap();
    assert_eq!(Comparison::of(&manifest), report);
}

/// A manifest from a newer gradient: fields this version does not know, a tier and a shared
/// input it does not know.
fn from_a_newer_gradient(mut manifest: Value) -> Value {
    manifest["signature"] = "added later".into();
    manifest["artifacts"][0]["attestation"] = serde_json::json!({"kind": "slsa"});
    manifest["artifacts"][0]["target_needs"]["kernel"] = ">=5.10".into();
    let mut flatpak = manifest["artifacts"][1].clone();
    flatpak["tier"] = "flatpak".into();
    flatpak["file"] = "sampleapp.flatpak".into();
    manifest["artifacts"].as_array_mut().unwrap().push(flatpak);
    manifest["skipped"] = serde_json::json!([{"tier": "snap", "reason": "no snapd"}]);
    let mut input = manifest["inputs"][0].clone();
    input["input"] = "constraints".into();
    manifest["inputs"].as_array_mut().unwrap().push(input);
    manifest
}

#[test]
fn a_manifest_from_a_newer_gradient_reads_without_what_this_version_does_not_know() {
    let written: Value = serde_json::from_str(MANIFEST).unwrap();
    let newer = from_a_newer_gradient(written.clone());
    let manifest: Manifest = serde_json::from_value(newer).unwrap();
    let as_written: Manifest = serde_json::from_value(written).unwrap();
    assert_eq!(
        manifest, as_written,
        "the unknown tier, input and fields are left out, the rest reads as written"
    );
}

#[test]
fn a_record_of_a_known_tier_that_is_malformed_still_fails() {
    let mut manifest: Value = serde_json::from_str(MANIFEST).unwrap();
    manifest["artifacts"][0]["size"] = "large".into();
    let error = serde_json::from_value::<Manifest>(manifest).unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
}

#[test]
fn a_report_from_a_newer_gradient_reads_with_an_unknown_status_and_without_unknown_tiers() {
    let mut report: Value = serde_json::from_str(REPORT).unwrap();
    report["rows"][0]["status"] = "quarantined".into();
    let mut flatpak = report["rows"][1].clone();
    flatpak["tier"] = "flatpak".into();
    report["rows"].as_array_mut().unwrap().push(flatpak);
    let report: Comparison = serde_json::from_value(report).unwrap();
    assert_eq!(report.rows[0].status, Status::Unknown);
    assert_eq!(report.rows.len(), Tier::ALL.len());
}
