//! `report.json`: the side-by-side comparison of a run's artifacts, one row per tier along
//! the gradient, made from the manifest alone.
//!
//! Versioned by [`REPORT_SCHEMA_VERSION`]; its JSON Schema is `docs/schema/report.schema.json`.
//! The driver renders the same rows as `report.md` and `report.html`.

use crate::forward::known_tiers;
use crate::manifest::{ArtifactRecord, Manifest, ProjectRecord, PythonRecord, ReferenceTally};
use gradient_core::{Rung, SourceDate, Startup, TargetNeeds, Tier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped on any change to `report.json` that is not a pure addition.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
/// The reports' file names in the output folder: for machines, for pull requests, for people.
pub const REPORT_FILES: [&str; 3] = ["report.json", "report.md", "report.html"];

/// `report.json`: the run's artifacts compared along the gradient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// The version of this schema (bumped on any change that is not a pure addition).
    pub schema_version: u32,
    pub gradient_version: String,
    pub project: ProjectRecord,
    pub python: PythonRecord,
    pub source_date: SourceDate,
    /// Along the gradient: from "the target has Python and pip" to "a package manager".
    #[serde(deserialize_with = "known_tiers")]
    #[schemars(with = "Vec<Row>")]
    pub rows: Vec<Row>,
}

/// One tier: built, or skipped with its reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Row {
    pub tier: Tier,
    /// What the target must run at least, in general.
    pub rung: Rung,
    /// What this artifact asks of its target, for people.
    pub target_needs_text: String,
    pub status: Status,
    /// Absent when the tier was skipped.
    pub artifact: Option<RowArtifact>,
    /// Why the tier was skipped.
    pub skipped_reason: Option<String>,
}

/// The artifact a built tier left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RowArtifact {
    pub file: String,
    /// The platform the file runs on, when it is bound to one (as in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<gradient_core::Platform>,
    pub size: u64,
    pub sha256: String,
    pub build_seconds: f64,
    /// Taken from the cache of an earlier identical build.
    pub reused: bool,
    pub target_needs: TargetNeeds,
    /// `passed/total` smoke checks; `None` when not run.
    pub smoke_passed: Option<usize>,
    pub smoke_total: Option<usize>,
    /// How many of the smoke test's checks came out as in the reference venv; `None` when
    /// they were not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_in_venv: Option<ReferenceTally>,
    /// `--verify-reproducible`'s verdict; `None` when not checked.
    pub reproducible: Option<bool>,
    /// Start-up time, first run and warm, as its smoke test measured it; `None` when not
    /// measured (the sdist is not run, or smoke tests were off).
    pub startup: Option<Startup>,
}

/// How a tier came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Built, and every smoke check passed.
    Passed,
    /// Built, and a smoke check failed.
    SmokeFailed,
    /// Built; the run was told not to smoke-test.
    NotSmokeTested,
    /// Not built on this host: see the row's `skipped_reason`.
    Skipped,
    /// A status written by a newer gradient that this version does not know.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

impl Comparison {
    /// The comparison of the artifacts and skipped tiers `manifest` lists.
    pub fn of(manifest: &Manifest) -> Comparison {
        let mut rows = Vec::new();
        for tier in Tier::ALL {
            for record in manifest.artifacts.iter().filter(|a| a.tier == tier) {
                rows.push(row(record));
            }
            for skipped in manifest.skipped.iter().filter(|s| s.tier == tier) {
                rows.push(Row {
                    tier,
                    rung: tier.rung(),
                    target_needs_text: tier.generic_needs().to_string(),
                    status: Status::Skipped,
                    artifact: None,
                    skipped_reason: Some(skipped.reason.clone()),
                });
            }
        }
        Comparison {
            schema_version: REPORT_SCHEMA_VERSION,
            gradient_version: manifest.gradient_version.clone(),
            project: manifest.project.clone(),
            python: manifest.python.clone(),
            source_date: manifest.source_date,
            rows,
        }
    }
}

fn row(record: &ArtifactRecord) -> Row {
    let status = match &record.smoke {
        None => Status::NotSmokeTested,
        Some(smoke) if smoke.passed => Status::Passed,
        Some(_) => Status::SmokeFailed,
    };
    Row {
        tier: record.tier,
        rung: record.tier.rung(),
        target_needs_text: record.target_needs.to_string(),
        status,
        artifact: Some(RowArtifact {
            file: record.file.clone(),
            platform: record.platform,
            size: record.size,
            sha256: record.sha256.clone(),
            build_seconds: record.build_seconds,
            reused: record.reused,
            target_needs: record.target_needs.clone(),
            smoke_passed: record
                .smoke
                .as_ref()
                .map(|s| s.checks.iter().filter(|c| c.passed).count()),
            smoke_total: record.smoke.as_ref().map(|s| s.checks.len()),
            as_in_venv: record.smoke.as_ref().and_then(|s| s.reference.clone()),
            reproducible: record.reproducible,
            startup: record.startup().cloned(),
        }),
        skipped_reason: None,
    }
}
