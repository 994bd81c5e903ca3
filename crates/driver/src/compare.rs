//! `gradient compare`: one gradient run, timed whole, then (with `--peers`) the reference
//! tools on the same project, one after another; the result as a table, `compare.json` and
//! `compare.md` in the output folder.

use crate::peers::{run_peers, PeerProject, PeerRun, PeerStatus};
use crate::plural;
use crate::publish::write_text_atomically;
use crate::report::{human_size, render};
use crate::{build, BuildOptions, DriverError, Reporter, RunOutcome};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Bumped on any change to `compare.json` that is not a pure addition.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

pub struct CompareOptions {
    pub build: BuildOptions,
    /// Also build the project with the reference tools found on this host.
    pub peers: bool,
    /// Run gradient on an empty cache of its own (download caches, which belong to uv and
    /// pip, stay warm for every tool alike).
    pub cold: bool,
    /// `--peer-base`: the base image `docker build` starts from.
    pub docker_base: Option<String>,
}

/// The comparison, as `compare.json` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub project: crate::manifest::ProjectRecord,
    /// gradient's run, every requested tier, timed from start to end.
    pub gradient: GradientRun,
    pub peers: Vec<PeerRun>,
    /// The built peers' times added up, as if run one after another.
    pub peers_seconds: f64,
    /// `gradient.seconds / peers_seconds`; `None` when no peer was built.
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GradientRun {
    pub tiers: Vec<gradient_core::Tier>,
    pub seconds: f64,
    /// On an empty gradient cache.
    pub cold: bool,
    /// Smoke tests (and start-up timing) were part of the run.
    pub smoke: bool,
    /// The gradient process's peak resident memory (VmHWM), in bytes; children not counted.
    pub peak_memory_bytes: Option<u64>,
    pub succeeded: bool,
}

pub struct CompareOutcome {
    pub run: RunOutcome,
    pub comparison: Comparison,
}

/// The name prefix of `--cold`'s private cache, in the temporary folder.
pub(crate) const COLD_CACHE_PREFIX: &str = "gradient-cold-cache-";

pub async fn compare(
    mut options: CompareOptions,
    reporter: &dyn Reporter,
) -> Result<CompareOutcome, DriverError> {
    let cold_cache = if options.cold {
        // Locked while the comparison runs: a killed run's is swept by the next.
        let dir =
            gradient_python::staging::Staged::dir_in(&std::env::temp_dir(), COLD_CACHE_PREFIX)
                .map_err(|source| DriverError::Io {
                    action: "create a cache folder in",
                    path: std::env::temp_dir(),
                    source,
                })?;
        options.build.cache_dir = Some(dir.path().to_path_buf());
        Some(dir)
    } else {
        None
    };
    let tiers = options.build.tiers.clone();
    let project_dir = options.build.project_dir.clone();
    let smoke = options.build.smoke;
    let started = Instant::now();
    let run = build(options.build, reporter).await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(cold_cache);
    // The build released its locks; the peers' output and the comparison go into the same
    // folder, so it is locked again until they are written.
    let _lock = crate::locks::lock_output_folder(&run.out_dir, reporter).await?;

    let peers = if options.peers {
        let project = gradient_core::Project::load(&project_dir)?;
        let wheel = run
            .manifest
            .artifacts
            .iter()
            .find(|a| a.tier == gradient_core::Tier::Wheel)
            .map(|a| run.out_dir.join(&a.file));
        let target = PeerProject {
            project: &project,
            name: &run.manifest.project.name,
            version: &run.manifest.project.version,
            python: &run.interpreter.executable,
            python_version: &run.interpreter.short_version(),
            out_dir: &run.out_dir,
            docker_base: options.docker_base.as_deref(),
            wheel: wheel.as_deref(),
        };
        run_peers(&target, &tiers, reporter).await
    } else {
        Vec::new()
    };
    let peers_seconds: f64 = peers
        .iter()
        .filter(|p| p.status == PeerStatus::Built)
        .filter_map(|p| p.seconds)
        .sum();
    let comparison = Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        project: run.manifest.project.clone(),
        gradient: GradientRun {
            tiers,
            seconds,
            cold: options.cold,
            smoke,
            peak_memory_bytes: peak_memory(),
            succeeded: run.succeeded(),
        },
        ratio: (peers_seconds > 0.0).then(|| seconds / peers_seconds),
        peers,
        peers_seconds,
    };
    let io = |path: PathBuf| {
        move |source| DriverError::Publish {
            action: "write",
            path,
            source,
        }
    };
    let json = serde_json::to_vec_pretty(&comparison).expect("the comparison serialises");
    let json_path = run.out_dir.join("compare.json");
    write_text_atomically(&json_path, &json).map_err(io(json_path.clone()))?;
    let md_path = run.out_dir.join("compare.md");
    write_text_atomically(&md_path, markdown(&comparison, &run).as_bytes())
        .map_err(io(md_path.clone()))?;
    Ok(CompareOutcome { run, comparison })
}

/// This process's peak resident memory so far, from `/proc/self/status`.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One row per gradient artifact, then one per peer: tool, tiers, files, size, build time.
pub fn table(comparison: &Comparison, run: &RunOutcome) -> String {
    let mut rows = vec![[
        "TOOL".to_string(),
        "TIER".to_string(),
        "FILE".to_string(),
        "SIZE".to_string(),
        "BUILD".to_string(),
    ]];
    rows.extend(rows_of(comparison, run));
    let mut out = render(&rows);
    out.push_str(&summary(comparison));
    out
}

fn rows_of(comparison: &Comparison, run: &RunOutcome) -> Vec<[String; 5]> {
    let mut rows = Vec::new();
    for artifact in &run.manifest.artifacts {
        rows.push([
            "gradient".to_string(),
            artifact.tier.to_string(),
            artifact.file.clone(),
            human_size(artifact.size),
            crate::report::build_cell(artifact),
        ]);
    }
    for peer in &comparison.peers {
        let tiers: Vec<String> = peer.tiers.iter().map(|t| t.to_string()).collect();
        let (file, size) = match (peer.status, &peer.reason) {
            (PeerStatus::Built, _) => (
                peer.files
                    .iter()
                    .map(|f| f.file.clone())
                    .chain(peer.image_size.map(|_| "(image in the engine)".to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
                peer.image_size
                    .or_else(|| Some(peer.files.iter().map(|f| f.size).sum()))
                    .map(human_size)
                    .unwrap_or_default(),
            ),
            (PeerStatus::Failed, reason) => (
                format!(
                    "FAILED: {}",
                    reason.as_deref().unwrap_or("").lines().last().unwrap_or("")
                ),
                "-".into(),
            ),
            (PeerStatus::Unavailable, reason) => (
                format!(
                    "not run: {}",
                    reason.as_deref().unwrap_or("").lines().next().unwrap_or("")
                ),
                "-".into(),
            ),
        };
        rows.push([
            peer.name.clone(),
            tiers.join(","),
            file,
            size,
            peer.seconds
                .map(|s| format!("{s:.2}s"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    rows
}

/// The totals: gradient's whole run against the peers' times added up.
fn summary(comparison: &Comparison) -> String {
    let gradient = &comparison.gradient;
    let mut out = format!(
        "\ngradient, {} in one run{}{}: {:.2}s",
        plural(gradient.tiers.len(), "tier"),
        if gradient.cold { ", cold cache" } else { "" },
        if gradient.smoke {
            ", smoke tests included"
        } else {
            ""
        },
        gradient.seconds
    );
    if let Some(bytes) = gradient.peak_memory_bytes {
        out.push_str(&format!("; peak memory {}", human_size(bytes)));
    }
    out.push('\n');
    let built = comparison
        .peers
        .iter()
        .filter(|p| p.status == PeerStatus::Built)
        .count();
    if let Some(ratio) = comparison.ratio {
        out.push_str(&format!(
            "{}, run one after another: {:.2}s; gradient took {ratio:.2}x their sum\n",
            plural(built, "reference tool"),
            comparison.peers_seconds
        ));
        if !gradient.cold {
            out.push_str("(gradient may have reused what its cache held; --cold times it on an empty cache)\n");
        }
    }
    out
}

fn markdown(comparison: &Comparison, run: &RunOutcome) -> String {
    let mut out = format!(
        "## gradient compared: {} {}\n\n| tool | tier | file | size | build |\n|---|---|---|---|---|\n",
        comparison.project.name, comparison.project.version
    );
    for row in rows_of(comparison, run) {
        out.push_str(&format!(
            "| {} |\n",
            row.map(|c| c.replace('|', "\\|")).join(" | ")
        ));
    }
    out.push_str(&summary(comparison));
    out
}
