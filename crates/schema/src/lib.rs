//! gradient-schema: the documents gradient writes for machines, as types.
//!
//! ```text
//!  gradient build ─► Manifest ──────────► gradient-manifest.json, SHA256SUMS
//!                       │
//!                       └─► Comparison ──► report.json (and, rendered by the driver,
//!                                          report.md and report.html)
//! ```
//!
//! The types here are the contract with whoever reads those files (CI scripts, `gradient
//! report --merge`, a later run of gradient): serde gives their JSON, [`manifest_schema`] and
//! [`report_schema`] their JSON Schema (checked in under `docs/schema/`). The crate holds
//! data and what follows from the data alone; the driver reads and writes the files.
//!
//! Forward compatibility: a document written by a newer gradient still reads. Unknown
//! fields are ignored, a report status this version does not know reads as
//! [`Status::Unknown`], and a record that names a tier or shared input this version does
//! not know is left out of what is read (see [`forward`]), rather than failing the whole
//! document.

pub mod forward;
pub mod manifest;
pub mod report;

pub use manifest::{
    ArtifactRecord, BuildRecord, InputRecord, LockRecord, Manifest, ProjectRecord, PythonRecord,
    ReferenceTally, SbomRecord, SkippedRecord, SmokeRecord, MANIFEST_FILE, SCHEMA_VERSION,
    SUMS_FILE,
};
pub use report::{Comparison, Row, RowArtifact, Status, REPORT_FILES, REPORT_SCHEMA_VERSION};

/// The JSON Schema of `gradient-manifest.json`, as `docs/schema/manifest.schema.json` holds it.
pub fn manifest_schema() -> String {
    pretty(schemars::schema_for!(Manifest))
}

/// The JSON Schema of `report.json`, as `docs/schema/report.schema.json` holds it.
pub fn report_schema() -> String {
    pretty(schemars::schema_for!(Comparison))
}

fn pretty(schema: schemars::Schema) -> String {
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}
