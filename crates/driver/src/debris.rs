//! What a run that ended without cleaning up (SIGKILL, a power cut, a crash) left behind,
//! removed by the next run: staging folders and files in the cache, partial files in the
//! output folder, and work folders in the temporary folder. Each was made under a lock
//! ([`gradient_python::staging`]) that its run held until it ended, so only those whose run
//! is gone are taken, never a concurrent run's.

use std::path::{Path, PathBuf};

/// The name prefix of a run's work folder, in the temporary folder.
pub(crate) const WORK_PREFIX: &str = "gradient-build-";

/// Every place where a run stages something, with the prefix of what it stages there.
fn areas(cache: &Path, out_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut areas = vec![
        (std::env::temp_dir(), WORK_PREFIX),
        (std::env::temp_dir(), crate::peers::PEER_WORK_PREFIX),
        (std::env::temp_dir(), crate::compare::COLD_CACHE_PREFIX),
        (out_dir.to_path_buf(), crate::publish::STAGING_PREFIX),
        (cache.join("tiers"), crate::tier_cache::STAGING_PREFIX),
        (cache.join(crate::differential::CACHE_FOLDER), ".tmp"),
    ];
    areas.extend(gradient_python::staging_areas(cache));
    areas.extend(gradient_wheel::staging_areas(cache));
    areas.extend(gradient_oci::staging_areas(cache));
    areas.extend(gradient_frozen::staging_areas(cache));
    areas.extend(gradient_ospkg::staging_areas(cache));
    areas
}

/// Remove what earlier runs left in `cache`, `out_dir` and the temporary folder.
pub(crate) fn sweep(cache: &Path, out_dir: &Path) {
    for (folder, prefix) in areas(cache, out_dir) {
        for removed in gradient_python::staging::sweep(&folder, prefix) {
            tracing::info!(
                "removed `{}`, left by a run that did not finish",
                removed.display()
            );
        }
    }
}
