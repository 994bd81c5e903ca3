//! `gradient-manifest.json` and `SHA256SUMS`: what a run produced, for machines.
//!
//! The schema is versioned by [`SCHEMA_VERSION`] and documented in `docs/manifest.md`. A run
//! that builds some tiers keeps the records of other tiers from the previous manifest when
//! their files are still there unchanged, so `--to sdist` then `--to wheel` lists both.

use gradient_core::{InterpreterFacts, SmokeCheck, SourceDate, Startup, TargetNeeds, Tier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Bumped on any change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// The file name in the output folder.
pub const MANIFEST_FILE: &str = "gradient-manifest.json";
pub const SUMS_FILE: &str = "SHA256SUMS";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub gradient_version: String,
    pub project: ProjectRecord,
    pub source_date: SourceDate,
    pub python: PythonRecord,
    pub artifacts: Vec<ArtifactRecord>,
    /// Tiers requested but not built on this host, with the reason.
    pub skipped: Vec<SkippedRecord>,
    /// Shared inputs published beside the artifacts (the wheelhouse's lock file).
    #[serde(default)]
    pub inputs: Vec<InputRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub input: gradient_core::Input,
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub tier: Tier,
    /// The file name, relative to the output folder.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub build_seconds: f64,
    pub target_needs: TargetNeeds,
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomRecord {
    /// `FILE.cdx.json`, relative to the output folder.
    pub file: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmokeRecord {
    pub passed: bool,
    pub seconds: f64,
    pub checks: Vec<SmokeCheck>,
    /// How many of its checks came out as in the reference venv (the app's wheel installed
    /// from the same lock), when they were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<crate::differential::ReferenceTally>,
    /// The artifact's start-up time, first run and warm, when the smoke test measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRecord {
    pub tier: Tier,
    pub reason: String,
}

impl ArtifactRecord {
    /// The start-up time its smoke test measured.
    pub fn startup(&self) -> Option<&Startup> {
        self.smoke.as_ref().and_then(|s| s.startup.as_ref())
    }
}

impl Manifest {
    /// Keep the previous manifest's records for tiers this run did not build, when their
    /// files are still in `out_dir` with the recorded digest. Returns what the run should
    /// say about the files it stops listing but leaves in the folder (it never deletes a
    /// file another run wrote).
    pub fn merge_previous(&mut self, out_dir: &Path) -> Vec<String> {
        let Ok(bytes) = std::fs::read(out_dir.join(MANIFEST_FILE)) else {
            return Vec::new();
        };
        let Ok(previous) = serde_json::from_slice::<Manifest>(&bytes) else {
            return Vec::new();
        };
        if previous.foreign_file().is_some() {
            return Vec::new();
        }
        if previous.project != self.project {
            let listed_now: BTreeSet<&str> =
                self.listed_files().into_iter().map(|(f, _)| f).collect();
            let left: Vec<&str> = previous
                .listed_files()
                .into_iter()
                .map(|(file, _)| file)
                .filter(|file| !listed_now.contains(file) && out_dir.join(file).is_file())
                .collect();
            if left.is_empty() {
                return Vec::new();
            }
            return vec![format!(
                "the output folder still holds files of {} {}, which this run of {} {} does not list: {}; remove them before publishing the folder",
                previous.project.name,
                previous.project.version,
                self.project.name,
                self.project.version,
                left.join(", ")
            )];
        }
        if previous.schema_version != SCHEMA_VERSION {
            return Vec::new();
        }
        let mut notes = Vec::new();
        for mut record in previous.artifacts {
            let built_now = self.artifacts.iter().any(|a| a.tier == record.tier);
            if !built_now
                && out_dir.join(&record.file).is_file()
                && !unchanged(out_dir, &record.file, &record.sha256)
            {
                notes.push(format!(
                    "`{}` has changed since the run that listed it, so it is no longer listed in the manifest or SHA256SUMS; build `{}` again to replace it",
                    record.file, record.tier
                ));
            }
            if !built_now && unchanged(out_dir, &record.file, &record.sha256) {
                // Its SBOM may have been rewritten since (a new tool, new inputs): listed
                // only while it still has the recorded digest.
                if let Some(sbom) = &record.sbom {
                    if !unchanged(out_dir, &sbom.file, &sbom.sha256) {
                        record.sbom = None;
                    }
                }
                self.artifacts.push(record);
            }
        }
        self.artifacts
            .sort_by(|a, b| a.tier.cmp(&b.tier).then(a.file.cmp(&b.file)));
        for record in previous.inputs {
            let built_now = self.inputs.iter().any(|i| i.file == record.file);
            if !built_now && unchanged(out_dir, &record.file, &record.sha256) {
                self.inputs.push(record);
            }
        }
        notes
    }

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

/// The artifact files the output folder's manifest lists, by name, with their sha256: what
/// an earlier run left there and described.
pub fn listed_before(out_dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read(out_dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
        .map(|previous| {
            previous
                .artifacts
                .into_iter()
                .map(|record| (record.file, record.sha256))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `file` in `dir` still has the recorded digest.
fn unchanged(dir: &Path, file: &str, sha256: &str) -> bool {
    crate::publish::file_digest(&dir.join(file)).is_ok_and(|digest| digest == sha256)
}
