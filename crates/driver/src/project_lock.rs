//! The project's lock in a plan: which file a build takes its versions from, whether it is
//! still current with `pyproject.toml`, and what it installs on the build's platform.
//!
//! gradient looks for `pylock.toml` (or a single `pylock.NAME.toml`), then `uv.lock`, then a
//! requirements file hashed throughout, unless `--lock FILE` or `[tool.gradient] lock` names
//! one; `--no-lock` resolves afresh. A stale lock is a warning, or with `--locked` an error.

use crate::DriverError;
use gradient_core::{InterpreterFacts, Project};
use gradient_lock::{Lock, LockFile, Package, ProjectRequirements};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the user said about locks.
#[derive(Clone, Debug, Default)]
pub struct LockOptions {
    /// `--lock FILE`.
    pub file: Option<PathBuf>,
    /// `--locked`: a missing or stale lock is an error.
    pub locked: bool,
    /// `--no-lock`: resolve afresh, whatever lock the project has.
    pub ignore: bool,
}

/// The lock a build uses.
#[derive(Clone, Debug)]
pub struct PlannedLock {
    pub file: LockFile,
    pub sha256: String,
    /// What it installs on the build's platform, the app left out.
    pub packages: Vec<Package>,
    /// The dependency groups bundled: `[tool.gradient] groups` and the lock's defaults.
    pub groups: Vec<String>,
    /// How it differs from `pyproject.toml`; empty when current.
    pub differences: Vec<String>,
    /// Whether it could be compared with `pyproject.toml` at all (not when the dependencies
    /// are dynamic, or the project has no `[project]` table).
    pub judged: bool,
    /// Other locks in the project that pin other versions, with what differs.
    pub disagreements: Vec<String>,
}

impl PlannedLock {
    /// The lock's file name, as messages and published files mention it.
    pub fn name(&self) -> String {
        self.file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn is_current(&self) -> bool {
        self.differences.is_empty()
    }
}

/// `lock` when its real path (symlinks followed) is inside the project's real folder.
fn inside_project(project: &Project, lock: LockFile) -> Result<LockFile, DriverError> {
    let real = |path: &std::path::Path| std::fs::canonicalize(path).ok();
    match (real(&lock.path), real(&project.root)) {
        (Some(file), Some(root)) if file.starts_with(&root) => Ok(lock),
        _ => Err(DriverError::LockOutside { lock: lock.path }),
    }
}

/// The project's lock as `options` choose it, read and selected for `python`; `None` when
/// the build resolves afresh.
pub fn plan_lock(
    project: &Project,
    python: &InterpreterFacts,
    options: &LockOptions,
) -> Result<Option<PlannedLock>, DriverError> {
    if options.ignore {
        return Ok(None);
    }
    let (chosen, others) = match (&options.file, &project.config.lock) {
        // The user's own flag names any file; the project's setting and what is found in
        // it must stay inside the project, symlinks followed.
        (Some(path), _) => (gradient_lock::named(path)?, Vec::new()),
        (None, Some(setting)) => (
            inside_project(project, gradient_lock::named(&project.root.join(setting))?)?,
            Vec::new(),
        ),
        (None, None) => {
            let mut found = gradient_lock::discover(&project.root)?.into_iter();
            match found.next() {
                // The others are only compared; one leading outside is not read at all.
                Some(first) => (
                    inside_project(project, first)?,
                    found
                        .filter_map(|other| inside_project(project, other).ok())
                        .collect(),
                ),
                None if options.locked => {
                    return Err(DriverError::NoLock {
                        project: project.root.clone(),
                    })
                }
                None => return Ok(None),
            }
        }
    };
    let lock = Lock::read(&chosen)?;
    // A project without [project] says its name only through its backend.
    let app = project.name.as_deref().map(gradient_core::normalize_name);
    let mut groups: Vec<String> = project.config.groups.clone();
    groups.extend(lock.default_groups.iter().cloned());
    groups.sort();
    groups.dedup();
    let env =
        gradient_python::wheelhouse::target_environment(python, &project.config.extras, &groups);
    let selected: Vec<&Package> = lock.select(app.as_deref(), &env)?;
    // Requirements the backend computes cannot be compared before it runs.
    let judged = project.declares_metadata
        && !project
            .dynamic
            .iter()
            .any(|d| d == "dependencies" || d == "optional-dependencies");
    let differences = if judged {
        lock.staleness(
            &ProjectRequirements {
                version: project.version.as_deref(),
                dependencies: &project.dependencies,
                optional: &project.optional_dependencies,
                requires_python: project.requires_python.as_deref(),
            },
            &selected,
            &env,
        )
    } else {
        Vec::new()
    };
    let mut planned = PlannedLock {
        sha256: hex::encode(Sha256::digest(lock.text.as_bytes())),
        file: chosen,
        packages: selected.iter().map(|p| (*p).clone()).collect(),
        groups,
        differences,
        judged,
        disagreements: Vec::new(),
    };
    if options.locked && !planned.is_current() {
        return Err(DriverError::StaleLock {
            lock: planned.file.path.clone(),
            differences: planned.differences.clone(),
        });
    }
    for other in others {
        let versions = |packages: &[&Package]| -> BTreeMap<String, String> {
            packages
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect()
        };
        let ours = versions(&selected);
        let theirs = match Lock::read(&other).and_then(|l| {
            let chosen = versions(&l.select(app.as_deref(), &env)?);
            Ok(chosen)
        }) {
            Ok(theirs) => theirs,
            Err(_) => continue,
        };
        let mut names: Vec<&String> = ours.keys().chain(theirs.keys()).collect();
        names.sort();
        names.dedup();
        let differing: Vec<String> = names
            .into_iter()
            .filter(|n| ours.get(*n) != theirs.get(*n))
            .map(|n| {
                let show = |v: Option<&String>| v.map_or("none".to_string(), |v| v.clone());
                format!("{n} {} vs {}", show(ours.get(n)), show(theirs.get(n)))
            })
            .collect();
        if !differing.is_empty() {
            let file_name = |f: &LockFile| {
                f.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            planned.disagreements.push(format!(
                "{} and {} disagree ({}); gradient uses {}: it reads pylock.toml, then uv.lock, then hashed requirements (name another with --lock FILE)",
                file_name(&planned.file),
                file_name(&other),
                differing.join(", "),
                file_name(&planned.file),
            ));
        }
    }
    Ok(Some(planned))
}
