//! `gradient report --merge DIR...`: join the output folders of runs made apart (one CI job
//! per tier, see `gradient plan --format github-matrix`) into one folder with one manifest,
//! one `SHA256SUMS` and one set of reports.
//!
//! Every file a manifest lists is checked against its recorded digest before it is copied,
//! so a damaged download is named rather than published.

use crate::manifest::{Manifest, MANIFEST_FILE, SCHEMA_VERSION, SUMS_FILE};
use crate::publish::{file_digest, write_atomically, write_text_atomically};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no manifest in `{}`", dir.display())]
    Missing {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a gradient manifest: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("`{}` has schema version {found}; this gradient reads version {SCHEMA_VERSION}", path.display())]
    Schema { path: PathBuf, found: u32 },
    #[error("the manifests are of different projects: {first} in `{}`, {other} in `{}`", first_dir.display(), other_dir.display())]
    OtherProject {
        first: String,
        first_dir: PathBuf,
        other: String,
        other_dir: PathBuf,
    },
    #[error("the folders were built with different {what}: {first} in `{}`, {other} in `{}`", first_dir.display(), other_dir.display())]
    Different {
        what: &'static str,
        first: String,
        first_dir: PathBuf,
        other: String,
        other_dir: PathBuf,
    },
    #[error("`{file}` differs between `{}` and `{}`", first_dir.display(), other_dir.display())]
    Conflict {
        file: String,
        first_dir: PathBuf,
        other_dir: PathBuf,
    },
    #[error("`{}` does not match its manifest ({reason})", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for MergeError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            MergeError::Missing { .. } => format!(
                "give the output folders of `gradient build` runs (each holds {MANIFEST_FILE})"
            ),
            MergeError::Schema { .. } => {
                "merge manifests written by the same gradient version".into()
            }
            MergeError::Different { .. } => "merge the folders of one release build, made with one SOURCE_DATE_EPOCH and one interpreter".into(),
            MergeError::Conflict { .. } => {
                "merge the folders of one release build, or rebuild the tier".into()
            }
            MergeError::Damaged { .. } => "download it again, or rebuild that tier".into(),
            MergeError::Unreadable { .. } | MergeError::OtherProject { .. } | MergeError::Io { .. } => {
                return None
            }
        })
    }
}

/// Say which files a manifest lists under a tier this gradient does not know (a newer one
/// wrote it): reading leaves their records out, so the merged folder will not hold them.
fn warn_of_unknown_tiers(dir: &Path, manifest: &Manifest) {
    let Ok(bytes) = std::fs::read(dir.join(MANIFEST_FILE)) else {
        return;
    };
    let Ok(raw) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return;
    };
    let known: Vec<&str> = manifest.artifacts.iter().map(|a| a.file.as_str()).collect();
    for record in raw["artifacts"].as_array().into_iter().flatten() {
        let file = record["file"].as_str().unwrap_or("?");
        if !known.contains(&file) {
            tracing::warn!(
                "`{file}` in `{}` is of tier `{}`, which this gradient does not know (a newer one wrote it): it is left out of the merged folder",
                dir.display(),
                record["tier"].as_str().unwrap_or("?")
            );
        }
    }
}

/// Read the manifests in `dirs`, check every file they list, copy the files into `out` and
/// write the joined manifest, `SHA256SUMS` and reports there.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Manifest, MergeError> {
    let mut merged: Option<(Manifest, PathBuf)> = None;
    // Each file once: (name, sha256, the folder it comes from).
    let mut files: Vec<(String, String, PathBuf)> = Vec::new();
    for dir in dirs {
        let manifest = read_manifest(dir)?;
        warn_of_unknown_tiers(dir, &manifest);
        let listed: Vec<(String, String)> = manifest
            .listed_files()
            .into_iter()
            .map(|(file, sha256)| (file.to_string(), sha256.to_string()))
            .collect();
        for (file, sha256) in listed {
            match files.iter().find(|(name, _, _)| *name == file) {
                Some((_, known, first_dir)) if *known != sha256 => {
                    return Err(MergeError::Conflict {
                        file,
                        first_dir: first_dir.clone(),
                        other_dir: dir.clone(),
                    })
                }
                Some(_) => {}
                None => files.push((file, sha256, dir.clone())),
            }
        }
        merged = Some(match merged {
            None => (manifest, dir.clone()),
            Some((mut first, first_dir)) => {
                if first.project != manifest.project {
                    return Err(MergeError::OtherProject {
                        first: format!("{} {}", first.project.name, first.project.version),
                        first_dir,
                        other: format!("{} {}", manifest.project.name, manifest.project.version),
                        other_dir: dir.clone(),
                    });
                }
                // The joined manifest states one source date and one interpreter.
                let different = |what, first: String, other: String| MergeError::Different {
                    what,
                    first,
                    first_dir: first_dir.clone(),
                    other,
                    other_dir: dir.clone(),
                };
                if first.source_date.seconds != manifest.source_date.seconds {
                    return Err(different(
                        "source dates",
                        first.source_date.seconds.to_string(),
                        manifest.source_date.seconds.to_string(),
                    ));
                }
                if first.python != manifest.python {
                    let show = |p: &crate::manifest::PythonRecord| {
                        format!("{} {} ({})", p.implementation, p.version, p.platform_tag)
                    };
                    return Err(different(
                        "interpreters",
                        show(&first.python),
                        show(&manifest.python),
                    ));
                }
                join(&mut first, manifest);
                (first, first_dir)
            }
        });
    }
    let (manifest, _) = merged.expect("clap asks for at least one folder");

    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| MergeError::Io {
            action,
            path,
            source,
        }
    };
    // Every file checked before the first is copied: a refused merge writes nothing.
    for (file, sha256, dir) in &files {
        let from = dir.join(file);
        let digest = file_digest(&from).map_err(|e| MergeError::Damaged {
            path: from.clone(),
            reason: e.to_string(),
        })?;
        if digest != *sha256 {
            return Err(MergeError::Damaged {
                path: from,
                reason: format!("sha256 {digest}, recorded {sha256}"),
            });
        }
    }
    std::fs::create_dir_all(out).map_err(io("create", out))?;
    for (file, _, dir) in &files {
        let from = dir.join(file);
        let to = out.join(file);
        if !same_place(&from, &to) {
            crate::publish::publish_file(&from, out).map_err(io("copy", &from))?;
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
    let path = out.join(MANIFEST_FILE);
    write_text_atomically(&path, &json).map_err(io("write", &path))?;
    let path = out.join(SUMS_FILE);
    write_atomically(&path, manifest.sha256sums().as_bytes()).map_err(io("write", &path))?;
    crate::comparison::write_reports(out, &manifest).map_err(io("write reports into", out))?;
    Ok(manifest)
}

/// Read the manifest of an output folder written by this gradient's schema version,
/// refusing one that lists a file outside its folder.
pub fn read_manifest(dir: &Path) -> Result<Manifest, MergeError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|source| MergeError::Missing {
        dir: dir.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| MergeError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let found = value["schema_version"].as_u64().unwrap_or(0) as u32;
    if found != SCHEMA_VERSION {
        return Err(MergeError::Schema { path, found });
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| MergeError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(file) = manifest.foreign_file() {
        return Err(MergeError::Unreadable {
            path,
            reason: format!("it lists `{file}`, which is not the name of a file in its folder"),
        });
    }
    Ok(manifest)
}

/// Add `other`'s artifacts, inputs and skipped tiers to `into`. A tier built in one folder
/// and skipped in another counts as built.
fn join(into: &mut Manifest, other: Manifest) {
    if into.build.is_none() {
        into.build = other.build;
    }
    for artifact in other.artifacts {
        if !into
            .artifacts
            .iter()
            .any(|a| a.tier == artifact.tier && a.file == artifact.file)
        {
            into.artifacts.push(artifact);
        }
    }
    for input in other.inputs {
        if !into.inputs.iter().any(|i| i.file == input.file) {
            into.inputs.push(input);
        }
    }
    into.skipped.extend(other.skipped);
    into.artifacts
        .sort_by(|a, b| a.tier.cmp(&b.tier).then(a.file.cmp(&b.file)));
    let built: Vec<_> = into.artifacts.iter().map(|a| a.tier).collect();
    into.skipped.retain(|s| !built.contains(&s.tier));
    into.skipped.sort_by_key(|s| s.tier);
    into.skipped.dedup_by_key(|s| s.tier);
}

fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ArtifactRecord, ProjectRecord, PythonRecord};
    use gradient_core::{SourceDate, SourceDateOrigin, Tier};

    /// A folder as a run leaves it: `file` with `bytes`, listed as the wheel.
    fn built_folder(dir: &Path, file: &str, bytes: &[u8]) -> serde_json::Value {
        std::fs::write(dir.join(file), bytes).unwrap();
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            gradient_version: "0.1.0".into(),
            project: ProjectRecord {
                name: "sampleapp".into(),
                version: "1.2.3".into(),
            },
            source_date: SourceDate {
                seconds: 315_532_800,
                origin: SourceDateOrigin::Fixed,
            },
            python: PythonRecord {
                implementation: "cpython".into(),
                version: "3.11.7".into(),
                python_tag: "cp311".into(),
                abi_tag: "cp311".into(),
                platform_tag: "linux_x86_64".into(),
            },
            artifacts: vec![ArtifactRecord {
                tier: Tier::Wheel,
                file: file.into(),
                sha256: file_digest(&dir.join(file)).unwrap(),
                size: bytes.len() as u64,
                build_seconds: 0.5,
                target_needs: Tier::Wheel.generic_needs(),
                platform: None,
                smoke: None,
                delivered: None,
                reused: false,
                reproducible: None,
                sbom: None,
            }],
            skipped: Vec::new(),
            inputs: Vec::new(),
            build: None,
        };
        serde_json::to_value(&manifest).unwrap()
    }

    #[test]
    fn a_record_of_a_tier_this_gradient_does_not_know_is_left_out_of_the_merge() {
        let (built, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut manifest = built_folder(built.path(), "sampleapp-1.2.3-py3-none-any.whl", b"wheel");
        // As a newer gradient would list a tier of its own.
        std::fs::write(built.path().join("sampleapp.flatpak"), b"flatpak").unwrap();
        let mut flatpak = manifest["artifacts"][0].clone();
        flatpak["tier"] = "flatpak".into();
        flatpak["file"] = "sampleapp.flatpak".into();
        flatpak["sha256"] = file_digest(&built.path().join("sampleapp.flatpak"))
            .unwrap()
            .into();
        manifest["artifacts"].as_array_mut().unwrap().push(flatpak);
        std::fs::write(
            built.path().join(MANIFEST_FILE),
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();

        let merged = merge(&[built.path().to_path_buf()], out.path()).unwrap();
        let tiers: Vec<Tier> = merged.artifacts.iter().map(|a| a.tier).collect();
        assert_eq!(tiers, [Tier::Wheel]);
        assert!(out
            .path()
            .join("sampleapp-1.2.3-py3-none-any.whl")
            .is_file());
        assert!(!out.path().join("sampleapp.flatpak").exists());
        let sums = std::fs::read_to_string(out.path().join(SUMS_FILE)).unwrap();
        assert!(!sums.contains("flatpak"), "{sums}");
    }
}
