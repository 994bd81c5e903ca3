//! `gradient-manifest.json`: what a run produced, for machines, and the `SHA256SUMS` it
//! implies.
//!
//! The schema is versioned by [`SCHEMA_VERSION`] and documented in `docs/manifest.md`; its
//! JSON Schema is `docs/schema/manifest.schema.json`.

use crate::forward::{known_inputs, known_tiers};
use gradient_core::{
    InterpreterFacts, Platform, SmokeCheck, SourceDate, Startup, TargetNeeds, Tier,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bumped on any change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// The manifest's file name in the output folder.
pub const MANIFEST_FILE: &str = "gradient-manifest.json";
/// The checksum list's file name in the output folder, in the format `sha256sum -c` reads.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// `gradient-manifest.json`: every artifact in the output folder, with its digest, what its
/// target needs and how its smoke test went, and the tiers that were skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    /// The version of this schema (bumped on any change that is not a pure addition).
    pub schema_version: u32,
    pub gradient_version: String,
    pub project: ProjectRecord,
    /// The timestamp in every artifact, and where it came from.
    pub source_date: SourceDate,
    /// The interpreter the artifacts were built with.
    pub python: PythonRecord,
    /// One record per artifact file, along the gradient.
    #[serde(deserialize_with = "known_tiers")]
    #[schemars(with = "Vec<ArtifactRecord>")]
    pub artifacts: Vec<ArtifactRecord>,
    /// Tiers requested but not built on this host, with the reason.
    #[serde(deserialize_with = "known_tiers")]
    #[schemars(with = "Vec<SkippedRecord>")]
    pub skipped: Vec<SkippedRecord>,
    /// Shared inputs published beside the artifacts (the wheelhouse's lock file).
    #[serde(default, deserialize_with = "known_inputs")]
    #[schemars(with = "Vec<InputRecord>")]
    pub inputs: Vec<InputRecord>,
    /// How the artifacts were made: the command, the project's revision and its lock (what
    /// `gradient publish` states in the provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
}

/// How a run was started and from what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuildRecord {
    /// The command line as given (credentials in it masked).
    pub command: Vec<String>,
    /// The project's git commit, when the project is a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// True when that checkout had changes not committed.
    #[serde(default)]
    pub dirty: bool,
    /// The project's lock file the dependencies were taken from, relative to the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockRecord>,
}

/// A lock file and its digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LockRecord {
    pub file: String,
    pub sha256: String,
}

/// A shared input published beside the artifacts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InputRecord {
    pub input: gradient_core::Input,
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

/// The project as its metadata names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectRecord {
    pub name: String,
    pub version: String,
}

/// The build interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PythonRecord {
    pub implementation: String,
    pub version: String,
    pub python_tag: String,
    pub abi_tag: String,
    pub platform_tag: String,
}

impl From<&InterpreterFacts> for PythonRecord {
    fn from(facts: &InterpreterFacts) -> Self {
        PythonRecord {
            implementation: facts.implementation.clone(),
            version: facts.full_version(),
            python_tag: facts.python_tag.clone(),
            abi_tag: facts.abi_tag.clone(),
            platform_tag: facts.platform_tag.clone(),
        }
    }
}

/// One artifact file in the output folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactRecord {
    pub tier: Tier,
    /// The file name, relative to the output folder.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub build_seconds: f64,
    pub target_needs: TargetNeeds,
    /// The platform the file runs on (`linux/arm64`), when it is bound to one; absent for
    /// a file that serves any (an sdist, a pure wheel or zipapp, an image index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// `None` when the run was told not to smoke-test.
    pub smoke: Option<SmokeRecord>,
    /// Where the artifact was handed on beyond the output folder (`loaded into Docker …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<String>,
    /// True when the file (and its smoke result) came from the cache of an earlier run
    /// with the same inputs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// `--verify-reproducible`: whether a second build gave the same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproducible: Option<bool>,
    /// The CycloneDX bill of materials written beside the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomRecord>,
}

/// An artifact's CycloneDX bill of materials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SbomRecord {
    /// `FILE.cdx.json`, relative to the output folder.
    pub file: String,
    pub sha256: String,
}

/// How an artifact's smoke test went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SmokeRecord {
    pub passed: bool,
    pub seconds: f64,
    pub checks: Vec<SmokeCheck>,
    /// How many of its checks came out as in the reference venv (the app's wheel installed
    /// from the same lock), when they were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceTally>,
    /// The artifact's start-up time, first run and warm, when the smoke test measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
}

/// A tier that was asked for and not built on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedRecord {
    pub tier: Tier,
    pub reason: String,
    /// What would make this host build it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ArtifactRecord {
    /// The start-up time its smoke test measured.
    pub fn startup(&self) -> Option<&Startup> {
        self.smoke.as_ref().and_then(|s| s.startup.as_ref())
    }
}

/// How many of an artifact's checks came out as in the reference venv, for the manifest
/// and the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReferenceTally {
    pub matched: usize,
    pub total: usize,
    /// Checks that fail in the reference venv too: reported, not counted.
    pub failing_in_reference: usize,
}

impl Manifest {
    /// The first file it lists whose name is not a plain file name of the output folder
    /// (a path, `..`): a manifest gradient wrote has none, and one edited to point outside
    /// its folder must not make gradient read or copy from there.
    pub fn foreign_file(&self) -> Option<&str> {
        self.listed_files()
            .into_iter()
            .map(|(file, _)| file)
            .find(|file| {
                file.is_empty() || *file == "." || *file == ".." || file.contains(['/', '\\', '\0'])
            })
    }

    /// The `SHA256SUMS` text, in the format `sha256sum -c` reads.
    pub fn sha256sums(&self) -> String {
        self.listed_files()
            .into_iter()
            .map(|(file, sha256)| format!("{sha256}  {file}\n"))
            .collect()
    }

    /// Every file the manifest lists, as `(file, sha256)`: the artifacts, their SBOMs, then
    /// the published inputs. A file two tiers publish (oci and docker) is listed once.
    pub fn listed_files(&self) -> Vec<(&str, &str)> {
        let artifacts = self.artifacts.iter().map(|a| (&a.file, &a.sha256));
        let sboms = self
            .artifacts
            .iter()
            .filter_map(|a| a.sbom.as_ref().map(|s| (&s.file, &s.sha256)));
        let inputs = self.inputs.iter().map(|i| (&i.file, &i.sha256));
        let mut seen = std::collections::BTreeSet::new();
        artifacts
            .chain(sboms)
            .chain(inputs)
            .filter(|(file, _)| seen.insert(file.as_str()))
            .map(|(file, sha256)| (file.as_str(), sha256.as_str()))
            .collect()
    }
}
