//! `gradient plan`: what a build would do, without building: which tiers this host can
//! build (or why not), the shared inputs each stands on, and whether the output folder's
//! last build of it is still kept in the tier cache. `--format github-matrix` turns the
//! buildable tiers into a job matrix, so a CI system can build them on separate runners.

use crate::doctor::{diagnose, TierStatus};
use crate::manifest::{Manifest, MANIFEST_FILE};
use gradient_core::{Input, Tier};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct PlannedTier {
    pub tier: Tier,
    /// `None` when this host can build it; else why not.
    pub unavailable: Option<String>,
    pub inputs: Vec<Input>,
    /// Those of `inputs` the cache already holds for this project and interpreter: a build
    /// reuses them. The wheelhouse counts as cached when the dependencies of the output
    /// folder's lock file are installed (a changed requirement makes a new lock).
    pub cached_inputs: Vec<Input>,
    /// The file the output folder's last build of this tier wrote, when the tier cache still
    /// holds it (a rebuild with unchanged inputs reuses it).
    pub last_build_cached: Option<String>,
}

/// The plan for `tiers` of the project in `project_dir`, whose output folder is `out_dir`.
pub async fn plan(
    project_dir: &Path,
    out_dir: Option<&Path>,
    python: Option<&str>,
    tiers: &[Tier],
) -> Result<Vec<PlannedTier>, crate::DriverError> {
    let project = gradient_core::Project::load(project_dir)?;
    // A value `build` would refuse is refused here too, rather than planned around.
    crate::resolve_source_date(&project.root).await?;
    let diagnosis = diagnose(python.or(project.config.python.as_deref())).await;
    let out_dir = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| project.root.join("dist"));
    let last: Option<Manifest> = std::fs::read(out_dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let cache = gradient_python::cache_root();
    let installer = gradient_python::Installer::detect();
    let backends = crate::registry::backends(&installer);
    let needed: Vec<Input> = backends
        .iter()
        .filter(|b| tiers.contains(&b.tier()))
        .flat_map(|b| b.inputs().iter().copied())
        .collect();
    let cached_inputs = cached_inputs(
        &project,
        python,
        &out_dir,
        &needed,
        last.as_ref(),
        &installer,
        &cache,
    )
    .await;
    let mut planned = Vec::new();
    for tier in Tier::ALL.into_iter().filter(|t| tiers.contains(t)) {
        let Some(backend) = backends.iter().find(|b| b.tier() == tier) else {
            continue;
        };
        let unavailable =
            diagnosis
                .tiers
                .iter()
                .find(|(t, _)| *t == tier)
                .and_then(|(_, status)| match status {
                    TierStatus::Ready => None,
                    TierStatus::Unavailable(why) => Some(why.clone()),
                    TierStatus::Planned => Some("not in this version of gradient".into()),
                });
        let last_build_cached = last.as_ref().and_then(|manifest| {
            let record = manifest.artifacts.iter().find(|a| a.tier == tier)?;
            crate::tier_cache::holds(&cache, tier, &record.file, &record.sha256)
                .then(|| record.file.clone())
        });
        planned.push(PlannedTier {
            tier,
            unavailable,
            inputs: backend.inputs().to_vec(),
            cached_inputs: backend
                .inputs()
                .iter()
                .filter(|i| cached_inputs.contains(i))
                .copied()
                .collect(),
            last_build_cached,
        });
    }
    Ok(planned)
}

/// Which of the `needed` shared inputs the cache holds, as the build would look them up;
/// none when no interpreter is found.
async fn cached_inputs(
    project: &gradient_core::Project,
    python: Option<&str>,
    out_dir: &Path,
    needed: &[Input],
    last: Option<&Manifest>,
    installer: &gradient_python::Installer,
    cache: &Path,
) -> Vec<Input> {
    let request = python
        .or(project.config.python.as_deref())
        .map(gradient_python::PythonRequest::parse)
        .unwrap_or(gradient_python::PythonRequest::Default);
    let Ok(python) = gradient_python::find_interpreter(&request, cache).await else {
        return Vec::new();
    };
    let Ok(source_date) = crate::resolve_source_date(&project.root).await else {
        return Vec::new();
    };
    let mut cached = Vec::new();
    let want_sdist = needed.contains(&Input::Sdist);
    let want_wheel = needed.contains(&Input::Wheel) || needed.contains(&Input::Wheelhouse);
    if want_sdist || want_wheel {
        let work = std::env::temp_dir();
        let request = gradient_wheel::BuildRequest {
            project,
            python: &python,
            installer,
            cache_root: cache,
            work_dir: &work,
            source_date,
            route: gradient_wheel::WheelRoute::ViaSdist,
            want_sdist,
            want_wheel,
            use_cache: true,
            out_dir: Some(out_dir),
            hook_timeout: None,
        };
        if gradient_wheel::distributions_cached(&request).await {
            cached.extend([Input::Sdist, Input::Wheel]);
        }
    }
    if needed.contains(&Input::Wheelhouse) {
        let name = last
            .map(|m| m.project.clone())
            .map(|p| (p.name, p.version))
            .unwrap_or_else(|| {
                (
                    project.display_name(),
                    project.version.clone().unwrap_or_default(),
                )
            });
        let lock = out_dir.join(format!(
            "{}-{}.lock.txt",
            gradient_core::normalize_name(&name.0),
            name.1
        ));
        if std::fs::read_to_string(lock)
            .is_ok_and(|lock| gradient_python::wheelhouse::site_cached(&lock, &python, cache))
        {
            cached.push(Input::Wheelhouse);
        }
    }
    if needed.contains(&Input::Runtime) && project.config.runtime.archive.is_none() {
        let stdlib = gradient_python::runtime::StdlibChoice::of(&project.config.runtime);
        if gradient_python::runtime::runtime_cached(&python, &stdlib, cache) {
            cached.push(Input::Runtime);
        }
    }
    cached
}

/// A GitHub Actions matrix (`strategy.matrix: ${{ fromJSON(...) }}`): one job per tier
/// this host can build.
pub fn github_matrix(plan: &[PlannedTier]) -> serde_json::Value {
    let include: Vec<serde_json::Value> = plan
        .iter()
        .filter(|p| p.unavailable.is_none())
        .map(|p| serde_json::json!({ "tier": p.tier }))
        .collect();
    serde_json::json!({ "include": include })
}
