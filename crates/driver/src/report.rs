//! The comparison table people read at the end of a run.

use crate::manifest::Manifest;

/// Render the artifacts of `manifest` along the gradient, one row each.
pub fn table(manifest: &Manifest) -> String {
    table_with_failures(manifest, &[])
}

/// The table of a finished run: its artifacts, and a `FAILED` row for each tier that failed
/// before it had an artifact (which the manifest cannot hold), so no failure leaves the
/// table looking empty or complete.
pub fn run_table(outcome: &crate::RunOutcome) -> String {
    let failed: Vec<(gradient_core::Tier, &str)> = outcome
        .tiers
        .iter()
        .filter_map(|t| Some((t.tier, t.error.as_deref()?)))
        .filter(|(tier, _)| !outcome.manifest.artifacts.iter().any(|a| a.tier == *tier))
        // A tier skipped with its reason (this host cannot build it) has its own row.
        .filter(|(tier, _)| !outcome.manifest.skipped.iter().any(|s| s.tier == *tier))
        .collect();
    table_with_failures(&outcome.manifest, &failed)
}

/// The line after the table: where the results went, and plainly when this run built no
/// artifact at all (only the lock file and the reports were written).
pub fn wrote_line(outcome: &crate::RunOutcome) -> String {
    let built = outcome
        .manifest
        .artifacts
        .iter()
        .any(|a| !outcome.earlier.contains(&a.tier));
    if built {
        format!("wrote {}", outcome.out_dir.display())
    } else {
        format!(
            "no artifact was built; wrote only the manifest, the reports and the lock file to {}",
            outcome.out_dir.display()
        )
    }
}

fn table_with_failures(manifest: &Manifest, failed: &[(gradient_core::Tier, &str)]) -> String {
    let mut rows = vec![[
        "TIER".to_string(),
        "FILE".to_string(),
        "SIZE".to_string(),
        "BUILD".to_string(),
        "START (FIRST/WARM)".to_string(),
        "SMOKE".to_string(),
        "AS IN VENV".to_string(),
        "REPRO".to_string(),
        "TARGET NEEDS".to_string(),
    ]];
    for artifact in &manifest.artifacts {
        let smoke = match &artifact.smoke {
            None => "not run".to_string(),
            Some(s) if s.passed => format!("ok ({}/{})", s.checks.len(), s.checks.len()),
            Some(s) => format!(
                "FAILED ({}/{})",
                s.checks.iter().filter(|c| c.passed).count(),
                s.checks.len()
            ),
        };
        rows.push([
            artifact.tier.to_string(),
            artifact.file.clone(),
            human_size(artifact.size),
            build_cell(artifact),
            match artifact.startup() {
                Some(s) => format!("{:.2}s / {:.2}s", s.first_run_seconds, s.warm_seconds),
                None => "-".into(),
            },
            smoke,
            reference_cell(artifact),
            match artifact.reproducible {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
            artifact.target_needs.to_string(),
        ]);
    }
    for (tier, error) in failed {
        rows.push([
            tier.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "FAILED".into(),
            "-".into(),
            "-".into(),
            error.lines().next().unwrap_or("").to_string(),
        ]);
    }
    for skipped in &manifest.skipped {
        rows.push([
            skipped.tier.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "skipped".into(),
            "-".into(),
            "-".into(),
            skipped.reason.lines().next().unwrap_or("").to_string(),
        ]);
    }
    render(&rows)
}

/// The AS IN VENV cell: how many of the smoke test's checks came out as in the reference
/// venv (`matched/total`), or `-` when they were not compared.
pub fn reference_cell(artifact: &crate::manifest::ArtifactRecord) -> String {
    match artifact.smoke.as_ref().and_then(|s| s.reference.as_ref()) {
        Some(tally) => format!("{}/{}", tally.matched, tally.total),
        None => "-".to_string(),
    }
}

/// The BUILD cell: the time, or `cached` for a tier reused from the cache.
pub fn build_cell(artifact: &crate::manifest::ArtifactRecord) -> String {
    if artifact.reused {
        "cached".to_string()
    } else {
        format!("{:.2}s", artifact.build_seconds)
    }
}

/// Left-aligned columns separated by two spaces.
pub fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `12.3 KiB`, `4.5 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_size(512), "512 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
