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
    let diagnosis = diagnose(python.or(project.config.python.as_deref())).await;
    let out_dir = out_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| project.root.join("dist"));
    let last: Option<Manifest> = std::fs::read(out_dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let cache = gradient_python::cache_root();
    let backends = crate::registry::backends(&gradient_python::Installer::detect());
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
            last_build_cached,
        });
    }
    Ok(planned)
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
