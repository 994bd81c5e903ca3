//! `gradient-manifest.json` and `SHA256SUMS` in the output folder: reading the previous
//! run's manifest and keeping what it lists that is still there.
//!
//! The types are gradient-schema's (re-exported here). A run that builds some tiers keeps
//! the records of other tiers from the previous manifest when their files are still there
//! unchanged, so `--to sdist` then `--to wheel` lists both.

pub use gradient_schema::manifest::*;
use std::collections::BTreeSet;
use std::path::Path;

/// What the driver does with a manifest and the output folder it describes.
pub trait OutputFolder {
    /// Keep the previous manifest's records for tiers this run did not build, when their
    /// files are still in `out_dir` with the recorded digest. Returns what the run should
    /// say about the files it stops listing but leaves in the folder (it never deletes a
    /// file another run wrote).
    fn merge_previous(&mut self, out_dir: &Path) -> Vec<String>;
}

impl OutputFolder for Manifest {
    fn merge_previous(&mut self, out_dir: &Path) -> Vec<String> {
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
