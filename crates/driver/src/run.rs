//! One `gradient build`: resolve everything, build shared inputs once, run the tiers
//! concurrently, publish, smoke-test, write the manifest.

use crate::comparison::Render;
use crate::differential::LazyReference;
use crate::manifest::{
    ArtifactRecord, InputRecord, Manifest, OutputFolder, ProjectRecord, PythonRecord,
    SkippedRecord, SmokeRecord, MANIFEST_FILE, SCHEMA_VERSION, SUMS_FILE,
};
use crate::plan::{Plan, PlanEntry, Purpose};
use crate::publish::{publish_checked, publish_file, write_atomically, write_text_atomically};
use crate::tier_cache::{self, KeyParts, Lookup, Slot};
use crate::{DriverError, Reporter};
use gradient_core::{
    render, AppIdentity, Artifact, Backend, BackendError, BuildContext, Input, Inputs,
    InterpreterFacts, PlannedFile, Platform, Project, RuntimeSource, SmokeCheck, SmokeContext,
    SmokeReport, SourceDate, Tier, WheelhouseFiles,
};
use gradient_python::wheelhouse::{build_wheelhouse, ProjectLock, WheelhouseRequest};
use gradient_python::Installer;
use gradient_wheel::{build_distributions, BuildRequest, WheelRoute};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub project_dir: PathBuf,
    /// Default: `PROJECT/dist`.
    pub out_dir: Option<PathBuf>,
    pub tiers: Vec<Tier>,
    /// `--python`: a version or a path; else `[tool.gradient] python`, else `python3`.
    pub python: Option<String>,
    pub route: WheelRoute,
    /// Run each artifact's smoke test (the default).
    pub smoke: bool,
    /// Smoke tests install dependencies only from this folder of wheels.
    pub find_links: Option<PathBuf>,
    /// Ignore cached distributions and tiers and build them again.
    pub rebuild: bool,
    /// Build each tier a second time and record whether the bytes are the same.
    pub verify_reproducible: bool,
    /// Stop the other tiers as soon as one fails.
    pub fail_fast: bool,
    /// A shared library the runtime needs but this host lacks is an error, not a warning.
    pub strict: bool,
    /// `--all`: tiers this host cannot build are skipped with their reason (a container
    /// engine is probed for the docker tier); named tiers are attempted.
    pub all: bool,
    /// `--tag`: references for the container image (default `NAME:VERSION`, `NAME:latest`).
    pub tags: Vec<String>,
    /// `--hook-timeout`: a PEP 517 hook still running after this long is stopped and fails
    /// the build (`None`: no limit).
    pub hook_timeout: Option<std::time::Duration>,
    /// gradient's cache folder for this run [default: `GRADIENT_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/gradient`]. `compare --cold` passes an empty one.
    pub cache_dir: Option<PathBuf>,
    /// `--entry`: the default script of the single-file tiers and the image, over
    /// `[tool.gradient] entry`.
    pub entry: Option<String>,
    /// `--lock`, `--locked`, `--no-lock`.
    pub lock: crate::project_lock::LockOptions,
    /// `--platform`: the platforms to build for, over `[tool.gradient] platforms`; empty
    /// means those, else the host's.
    pub platforms: Vec<gradient_core::Platform>,
    /// The command line that started the run, recorded in the manifest (masked).
    pub command: Vec<String>,
}

/// How one tier went.
#[derive(Clone, Debug)]
pub struct TierOutcome {
    pub tier: Tier,
    /// The error, when building, publishing or smoke-testing failed: its message and
    /// causes, one per line ([`gradient_core::error_chain`]).
    pub error: Option<String>,
    /// What the user can do about the error.
    pub hint: Option<String>,
}

/// Everything a finished run knows; the CLI renders it.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub manifest: Manifest,
    pub out_dir: PathBuf,
    pub tiers: Vec<TierOutcome>,
    pub interpreter: Arc<InterpreterFacts>,
    pub installer: String,
    /// The tiers whose records the manifest kept from the folder's previous one: this run
    /// made none of their files (not asked for, or failed before it had one).
    pub earlier: Vec<Tier>,
}

impl RunOutcome {
    /// Every requested tier built and passed its smoke test.
    pub fn succeeded(&self) -> bool {
        self.tiers.iter().all(|t| t.error.is_none())
    }
}

/// Run a build: resolve its plan, then execute it, one step after another.
pub async fn build(
    options: BuildOptions,
    reporter: &dyn Reporter,
) -> Result<RunOutcome, DriverError> {
    let mut plan = Plan::resolve(&options, Purpose::Build, reporter).await?;
    let work = open_work_folder(&plan, &options, reporter).await?;
    let mut skipped = announce_skipped(&plan, reporter);
    let shared = build_inputs(&mut plan, &work, &options, reporter).await?;
    let results = run_tiers(&plan, &work, &shared, &options, reporter).await;
    let results = time_startup_and_keep(&plan, results, reporter).await;
    let (outcomes, mut records) = tally(&plan, results, &mut skipped, &options);
    remove_unlisted(
        work.published_files
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
        &records,
        || crate::manifest::listed_before(&plan.out_dir),
        reporter,
    );
    let project_record = ProjectRecord {
        name: plan.app.name.clone(),
        version: plan.app.version.clone().unwrap_or_default(),
    };
    write_sboms(&plan, &shared, &project_record, &mut records).await?;
    write_beside(&plan, &records, reporter);
    let mut manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        gradient_version: env!("CARGO_PKG_VERSION").to_string(),
        project: project_record,
        source_date: plan.source_date,
        python: PythonRecord::from(plan.python().as_ref()),
        artifacts: records,
        skipped,
        inputs: shared.records,
        build: Some(build_record(&plan, &options.command)),
    };
    let earlier = write_run_files(&plan, &mut manifest, reporter)?;
    Ok(RunOutcome {
        manifest,
        out_dir: plan.out_dir.clone(),
        tiers: outcomes,
        interpreter: plan.python().clone(),
        installer: plan.installer.name().to_string(),
        earlier,
    })
}

/// How this run was started and from what: the command (credentials masked), the
/// project's git commit when it is a checkout, and the lock it took its versions from.
fn build_record(plan: &Plan, command: &[String]) -> crate::manifest::BuildRecord {
    let root = &plan.project.root;
    let git = |args: &[&str]| -> Option<String> {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let revision = git(&["rev-parse", "--verify", "HEAD"])
        .filter(|rev| rev.len() >= 40 && rev.chars().all(|c| c.is_ascii_hexdigit()));
    let dirty = revision.is_some()
        && git(&["status", "--porcelain", "--untracked-files=no", "--", "."])
            .is_some_and(|changes| !changes.is_empty());
    let lock = plan.lock.as_ref().map(|lock| crate::manifest::LockRecord {
        file: lock
            .file
            .path
            .strip_prefix(root)
            .unwrap_or(&lock.file.path)
            .display()
            .to_string(),
        sha256: lock.sha256.clone(),
    });
    crate::manifest::BuildRecord {
        command: command
            .iter()
            .map(|arg| gradient_core::redact::redact(arg).into_owned())
            .collect(),
        revision,
        dirty,
        lock,
    }
}

/// The tiers this host cannot build, said, as the manifest records them.
fn announce_skipped(plan: &Plan, reporter: &dyn Reporter) -> Vec<SkippedRecord> {
    let mut skipped = Vec::new();
    for entry in &plan.entries {
        if let Some(unavailable) = &entry.unavailable {
            reporter.warn(&format!("skipping {}: {unavailable}", entry.tier));
            skipped.push(SkippedRecord {
                tier: entry.tier,
                reason: unavailable.reason.clone(),
                hint: unavailable.hint.clone(),
            });
        }
    }
    skipped
}

/// The run's private folders: the project and output folder locks (a second run on the same
/// project, or into the same output folder, waits for this one), the debris of killed runs
/// swept, and a work folder that can run programs.
struct WorkFolder {
    _locks: Vec<std::fs::File>,
    /// Held under a lock while the run lives, removed when it ends (also when the run is
    /// dropped on a signal); after a SIGKILL, by the next run's sweep.
    staged: gradient_python::staging::Staged,
    /// Every file published into the output folder in this run, noted as it lands, so that
    /// one no record lists (its tier stopped by --fail-fast, or failed between two files)
    /// can be taken out again.
    published_files: std::sync::Mutex<Vec<PathBuf>>,
}

impl WorkFolder {
    fn path(&self) -> &Path {
        self.staged.path()
    }
}

async fn open_work_folder(
    plan: &Plan,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<WorkFolder, DriverError> {
    let lock_root = match options.cache_dir {
        Some(_) => crate::locks::locks_root(reporter),
        None => plan.cache.clone(),
    };
    let locks = crate::locks::lock_folders(
        &lock_root,
        &[
            (&plan.project.root, "building"),
            (&plan.out_dir, "writing into"),
        ],
        reporter,
    )
    .await?;
    crate::debris::sweep(&plan.cache, &plan.out_dir);
    let staged =
        gradient_python::staging::Staged::dir_in(&std::env::temp_dir(), crate::debris::WORK_PREFIX)
            .map_err(|source| DriverError::Io {
                action: "create a work folder in",
                path: std::env::temp_dir(),
                source,
            })?;
    if options.smoke {
        check_can_execute(staged.path())?;
    }
    Ok(WorkFolder {
        _locks: locks,
        staged,
        published_files: std::sync::Mutex::new(Vec::new()),
    })
}

/// Every buildable tier, concurrently: build (or reuse), publish, deliver, smoke-test.
/// `--fail-fast` drops the others when one fails. A tier the plan delivers from another's
/// build (docker from oci) shares that one build.
async fn run_tiers(
    plan: &Plan,
    work: &WorkFolder,
    shared: &SharedInputs,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Vec<(PlanEntry, Option<TierResult>)> {
    let entries: Vec<PlanEntry> = plan.buildable().cloned().collect();
    let host_inputs = Arc::new(shared.inputs.clone());
    let foreign: BTreeMap<Platform, Arc<Inputs>> = shared
        .targets
        .iter()
        .map(|(platform, inputs)| (*platform, Arc::new(inputs.clone())))
        .collect();
    // A platform whose own inputs no tier needed (an sdist asked for it alone) takes the
    // host's: the distributions serve every platform.
    let inputs_for = |platform: &Platform| foreign.get(platform).unwrap_or(&host_inputs).clone();
    let entry_targets: Vec<Vec<Arc<Inputs>>> = entries
        .iter()
        .map(|entry| entry.platforms.iter().map(inputs_for).collect())
        .collect();
    let reference = LazyReference::new(
        &plan.installer,
        plan.python(),
        work.path(),
        &plan.cache,
        options.find_links.clone(),
    );
    let builds = SharedBuilds::default();
    let runs = entries.iter().zip(&entry_targets).map(|(entry, targets)| {
        run_tier(
            entry,
            TierRun {
                project: &plan.project,
                python: plan.python(),
                inputs: &targets[0],
                targets,
                host_inputs: &host_inputs,
                cache: &plan.cache,
                work: work.path(),
                out_dir: &plan.out_dir,
                source_date: plan.source_date,
                options,
                input_seconds: &shared.seconds,
                published_files: &work.published_files,
                reference: &reference,
                builds: &builds,
                reporter,
            },
        )
    });
    let mut pending: futures::stream::FuturesUnordered<_> = runs
        .enumerate()
        .map(|(index, run)| async move { (index, run.await) })
        .collect();
    let mut results: Vec<Option<TierResult>> = entries.iter().map(|_| None).collect();
    while let Some((index, result)) = futures::StreamExt::next(&mut pending).await {
        if result.is_err() {
            reporter.tier_finished(entries[index].tier);
        }
        // A tier that refuses the project under --all is a skip, not a failure.
        let refused = matches!(
            &result,
            Err(TierFailure {
                refused: Some(_),
                ..
            })
        );
        let failed = tier_error(&result).is_some() && !(refused && options.all);
        results[index] = Some(result);
        if failed && options.fail_fast {
            // Dropping the other tiers' futures stops them (and their processes).
            break;
        }
    }
    drop(pending);
    entries.into_iter().zip(results).collect()
}

/// Start-up times, one artifact at a time with nothing else running, then each finished
/// tier kept in the cache.
async fn time_startup_and_keep(
    plan: &Plan,
    mut results: Vec<(PlanEntry, Option<TierResult>)>,
    reporter: &dyn Reporter,
) -> Vec<(PlanEntry, Option<TierResult>)> {
    for (entry, result) in &mut results {
        if let Some(Ok(finished)) = result {
            measure_startup(entry.backend.as_ref(), finished, reporter).await;
            keep_in_cache(finished, &plan.out_dir, reporter);
            reporter.tier_finished(finished.tier);
        }
    }
    results
}

/// How each tier went, and the records of the files the run published. `--all` asks for
/// what this host can build; a tier named with `--to` that it cannot build fails the run,
/// with its reason.
fn tally(
    plan: &Plan,
    results: Vec<(PlanEntry, Option<TierResult>)>,
    skipped: &mut Vec<SkippedRecord>,
    options: &BuildOptions,
) -> (Vec<TierOutcome>, Vec<ArtifactRecord>) {
    let mut outcomes: Vec<TierOutcome> = plan
        .entries
        .iter()
        .filter_map(|entry| Some((entry.tier, entry.unavailable.as_ref()?)))
        .map(|(tier, unavailable)| match options.all {
            true => TierOutcome {
                tier,
                error: None,
                hint: None,
            },
            false => TierOutcome {
                tier,
                error: Some(format!(
                    "cannot be built on this host: {}",
                    unavailable.reason
                )),
                hint: unavailable.hint.clone(),
            },
        })
        .collect();
    let mut records = Vec::new();
    for (entry, result) in results {
        let (error, hint) = match &result {
            // Refused for this project: a skip with its reason, which fails the run only
            // when the tier was named with --to.
            Some(Err(TierFailure {
                refused: Some(refused),
                error,
                hint,
                ..
            })) => {
                skipped.push(SkippedRecord {
                    tier: entry.tier,
                    reason: refused.reason.clone(),
                    hint: refused.hint.clone(),
                });
                match options.all {
                    true => (None, None),
                    false => (Some(error.clone()), hint.clone()),
                }
            }
            Some(result) => match tier_error(result) {
                Some((error, hint)) => (Some(error), hint),
                None => (None, None),
            },
            None => (
                Some("stopped: another tier failed and --fail-fast was given".to_string()),
                None,
            ),
        };
        match result {
            Some(Ok(mut finished)) => records.append(&mut finished.records),
            Some(Err(mut failure)) => records.append(&mut failure.records),
            None => {}
        }
        outcomes.push(TierOutcome {
            tier: entry.tier,
            error,
            hint,
        });
    }
    let records = one_record_per_file(records);
    for record in &records {
        check_named_as_planned(plan, record);
    }
    (outcomes, records)
}

/// A tier built once per platform can make the same file for each (a package with no
/// compiled code, `_all.deb`): one record says it, bound to no platform, with a failed
/// smoke test of any platform rather than a passed one.
fn one_record_per_file(records: Vec<ArtifactRecord>) -> Vec<ArtifactRecord> {
    let mut kept: Vec<ArtifactRecord> = Vec::with_capacity(records.len());
    for record in records {
        let same = kept
            .iter_mut()
            .find(|k| k.tier == record.tier && k.file == record.file && k.sha256 == record.sha256);
        match same {
            Some(earlier) => {
                let failed = |r: &ArtifactRecord| r.smoke.as_ref().is_some_and(|s| !s.passed);
                if failed(&record) && !failed(earlier) {
                    *earlier = record;
                }
                earlier.platform = None;
            }
            None => kept.push(record),
        }
    }
    kept
}

/// The plan named every file before the build, and named them again from the built
/// distributions; a tier that wrote another name than a settled one is a bug in gradient
/// (the tier's build and its `artifact_files` disagree), logged for a report. A name the
/// plan could only predict (`settled: false`) is the build's to decide.
fn check_named_as_planned(plan: &Plan, record: &ArtifactRecord) {
    let files: Vec<&PlannedFile> = plan
        .entries
        .iter()
        .filter(|e| e.tier == record.tier)
        .flat_map(|e| &e.files)
        .collect();
    let planned: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let settled = !files.is_empty() && files.iter().all(|f| f.settled);
    if settled && !planned.contains(&record.file.as_str()) {
        tracing::warn!(
            "{}: wrote `{}`, but the plan named {planned:?}",
            record.tier,
            record.file
        );
    }
}

/// Each published file's CycloneDX SBOM beside it. An artifact without its SBOM is not a
/// finished run: an error stops it.
/// A file bound to another platform is described from that platform's inputs; one that
/// serves several, from the host's.
async fn write_sboms(
    plan: &Plan,
    shared: &SharedInputs,
    project_record: &ProjectRecord,
    records: &mut [ArtifactRecord],
) -> Result<(), DriverError> {
    let python_record = PythonRecord::from(plan.python().as_ref());
    let mut sboms: BTreeMap<String, crate::manifest::SbomRecord> = BTreeMap::new();
    for record in records.iter_mut() {
        // oci and docker publish one file: the first along the gradient describes it.
        if let Some(sbom) = sboms.get(&record.file) {
            record.sbom = Some(sbom.clone());
            continue;
        }
        let inputs = record
            .platform
            .and_then(|platform| shared.targets.get(&platform))
            .unwrap_or(&shared.inputs);
        // Another platform's file carries that platform's CPython.
        let python_of_platform = match &inputs.target {
            Some(target) => PythonRecord {
                version: target.python_version.clone(),
                platform_tag: format!("linux_{}", target.platform.machine()),
                ..python_record.clone()
            },
            None => python_record.clone(),
        };
        let backend = plan.entries.iter().find(|e| e.tier == record.tier);
        let shipped = match (backend, &inputs.runtime) {
            (Some(entry), Some(runtime)) => {
                entry
                    .backend
                    .shipped_runtime(&plan.project, runtime, &plan.cache)
                    .await
            }
            _ => None,
        };
        let sources = crate::sbom::SbomSources {
            project: project_record,
            app: inputs.app.as_ref().map(|app| app.metadata()),
            wheelhouse: inputs.wheelhouse.as_ref(),
            runtime: shipped.as_ref().map(|(runtime, _)| runtime),
            runtime_libraries: shipped.as_ref().is_some_and(|(_, libraries)| *libraries),
            python: &python_of_platform,
            source_date: plan.source_date,
        };
        let sbom =
            write_sbom(record, &sources, &plan.out_dir).map_err(|source| DriverError::Publish {
                action: "write the bill of materials of",
                path: plan.out_dir.join(&record.file),
                source,
            })?;
        sboms.insert(record.file.clone(), sbom.clone());
        record.sbom = Some(sbom);
    }
    Ok(())
}

/// The manifest (with the records it keeps from the folder's previous one), SHA256SUMS, the
/// comparison reports and, in a GitHub Actions job, the step summary; each written
/// atomically. Returns the tiers whose records were kept from the previous manifest.
fn write_run_files(
    plan: &Plan,
    manifest: &mut Manifest,
    reporter: &dyn Reporter,
) -> Result<Vec<Tier>, DriverError> {
    if manifest.artifacts.is_empty() {
        return Ok(Vec::new());
    }
    let out_dir = &plan.out_dir;
    let built_now: Vec<Tier> = manifest.artifacts.iter().map(|a| a.tier).collect();
    for note in manifest.merge_previous(out_dir) {
        reporter.warn(&note);
    }
    let mut earlier: Vec<Tier> = manifest
        .artifacts
        .iter()
        .map(|a| a.tier)
        .filter(|tier| !built_now.contains(tier))
        .collect();
    earlier.dedup();
    let io = |path: PathBuf| {
        move |source| DriverError::Publish {
            action: "write",
            path,
            source,
        }
    };
    let manifest_path = out_dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
    write_text_atomically(&manifest_path, &json).map_err(io(manifest_path.clone()))?;
    let sums_path = out_dir.join(SUMS_FILE);
    write_atomically(&sums_path, manifest.sha256sums().as_bytes())
        .map_err(io(sums_path.clone()))?;
    crate::comparison::write_reports(out_dir, manifest).map_err(io(out_dir.clone()))?;
    append_step_summary(manifest, reporter);
    Ok(earlier)
}

/// In a GitHub Actions job: the comparison goes on the run's summary page too.
fn append_step_summary(manifest: &Manifest, reporter: &dyn Reporter) {
    let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) else {
        return;
    };
    let markdown = crate::comparison::Comparison::of(manifest).markdown();
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&summary)
        .and_then(|mut file| {
            let text = crate::publish::redact_bytes(markdown.as_bytes());
            std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        });
    if let Err(error) = appended {
        reporter.warn(&format!(
            "could not append the summary to GITHUB_STEP_SUMMARY (`{}`): {error}",
            Path::new(&summary).display()
        ));
    }
}

/// What a tier writes beside its published artifacts (the rpm's rpmlintrc), only when its
/// bytes change. Not an artifact: one that cannot be written is a warning.
fn write_beside(plan: &Plan, records: &[ArtifactRecord], reporter: &dyn Reporter) {
    for record in records {
        let Some(entry) = plan.entries.iter().find(|e| e.tier == record.tier) else {
            continue;
        };
        let artifact = plan.out_dir.join(&record.file);
        // Taking a file out of the artifact means reading all of it (an rpm's payload is
        // decompressed): done only when one beside it is missing or older than the artifact.
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let current = entry.backend.beside_names(&record.file).iter().all(|name| {
            match (modified(&plan.out_dir.join(name)), modified(&artifact)) {
                (Some(beside), Some(made)) => beside >= made,
                _ => false,
            }
        });
        if current {
            continue;
        }
        for (name, bytes) in entry.backend.beside(&artifact) {
            let path = plan.out_dir.join(&name);
            if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
                continue;
            }
            if let Err(error) = crate::publish::write_atomically(&path, &bytes) {
                reporter.warn(&format!("could not write `{}`: {error}", path.display()));
            }
        }
    }
}

/// Write the CycloneDX SBOM of `record`'s file beside it (atomically, and only when its
/// bytes change). Two tiers that publish one file (oci and docker) share one SBOM.
fn write_sbom(
    record: &ArtifactRecord,
    sources: &crate::sbom::SbomSources,
    out_dir: &Path,
) -> std::io::Result<crate::manifest::SbomRecord> {
    let file = crate::sbom::sbom_file_name(&record.file);
    let bytes = crate::sbom::sbom(record, sources)?;
    let path = out_dir.join(&file);
    if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        write_atomically(&path, &bytes)?;
    }
    Ok(crate::manifest::SbomRecord {
        sha256: crate::publish::sha256_hex(&bytes),
        file,
    })
}

/// Why a finished tier counts as failed: its error and hint, or its first failed smoke test.
fn tier_error(result: &TierResult) -> Option<(String, Option<String>)> {
    match result {
        Ok(finished) => finished
            .records
            .iter()
            .find(|r| r.smoke.as_ref().is_some_and(|s| !s.passed))
            .map(|r| (format!("smoke test of {} failed", r.file), None)),
        Err(failure) => Some((failure.error.clone(), failure.hint.clone())),
    }
}

/// The shared inputs of a run, built once.
struct SharedInputs {
    /// The host platform's (the sdist and the app's wheel serve every platform).
    inputs: Inputs,
    /// Every other platform's, by platform: the same distributions with that platform's
    /// system, runtime and wheelhouse.
    targets: BTreeMap<Platform, Inputs>,
    /// The host's wheelhouse as built, whose pins a foreign one installs.
    host_wheelhouse: Option<gradient_python::wheelhouse::Wheelhouse>,
    seconds: BTreeMap<Input, f64>,
    /// The app as the built distributions name it.
    app: Option<AppIdentity>,
    /// Inputs published into the output folder (the lock file).
    records: Vec<InputRecord>,
}

struct InputRun<'a> {
    project: &'a Project,
    python: &'a InterpreterFacts,
    installer: &'a Installer,
    cache: &'a Path,
    work: &'a Path,
    out_dir: &'a Path,
    source_date: SourceDate,
    options: &'a BuildOptions,
    reporter: &'a dyn Reporter,
    /// The project's lock, when the dependencies come from one.
    lock: Option<&'a crate::project_lock::PlannedLock>,
}

/// Build each input the plan needs once, then name the tiers' files from what was built.
/// The runtime needs nothing else: it is bundled, and the tiers' runtime-only parts are
/// made ([`Backend::prepare`]), while the sdist and the wheel build and the wheelhouse is
/// resolved from the wheel's requirements.
async fn build_inputs(
    plan: &mut Plan,
    work: &WorkFolder,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<SharedInputs, DriverError> {
    let needed = plan.needed_inputs();
    // Each builder once, with the first tier it builds for (whose line shows its work).
    let mut builders: Vec<(Arc<dyn Backend>, Tier)> = Vec::new();
    for entry in plan.buildable() {
        if !builders
            .iter()
            .any(|(b, _)| b.tier() == entry.builder.tier())
        {
            builders.push((entry.builder.clone(), entry.tier));
        }
    }
    let run = InputRun {
        project: &plan.project,
        python: plan.python(),
        installer: &plan.installer,
        cache: &plan.cache,
        work: work.path(),
        out_dir: &plan.out_dir,
        source_date: plan.source_date,
        options,
        reporter,
        lock: plan.lock.as_ref(),
    };
    let runtime_and_parts = async {
        if !needed.contains(&Input::Runtime) {
            return Ok(None);
        }
        let (runtime, seconds) = build_runtime(&run).await?;
        for (builder, tier) in &builders {
            let started = Instant::now();
            if let Some(made) = builder.prepare(run.project, &runtime, run.cache).await {
                reporter.tier_step_done(*tier, &made, started.elapsed().as_secs_f64());
            }
        }
        Ok::<_, DriverError>(Some((runtime, seconds)))
    };
    let (shared, runtime) = tokio::join!(
        build_distributions_and_wheelhouse(&needed, &run),
        runtime_and_parts
    );
    let mut shared = shared?;
    if let Some((runtime, seconds)) = runtime? {
        shared.seconds.insert(Input::Runtime, seconds);
        shared.inputs.runtime = Some(runtime);
    }
    // An app with compiled code of its own is not cross-compiled: whatever tiers were asked
    // for, its wheel (which every tier carries) is the host's only.
    if let (Some(app), Some(foreign)) = (&shared.inputs.app, plan.foreign_platforms_any().next()) {
        if !app.info.is_universal() {
            return Err(DriverError::Wheelhouse(
                gradient_python::wheelhouse::WheelhouseError::AppNotPure {
                    wheel: app
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    platform: foreign,
                },
            ));
        }
    }
    shared.targets = build_foreign_inputs(plan, &shared, &run).await?;
    if let Some(app) = shared.app.clone() {
        plan.settle(app);
    }
    Ok(shared)
}

/// For each platform other than the host's that a buildable tier builds for: the system its
/// artifacts are made from (Debian's CPython for it, with its libraries), and from it that
/// platform's runtime bundle and wheelhouse (the host's pins, with the target's wheels).
async fn build_foreign_inputs(
    plan: &Plan,
    shared: &SharedInputs,
    run: &InputRun<'_>,
) -> Result<BTreeMap<Platform, Inputs>, DriverError> {
    let mut targets = BTreeMap::new();
    for platform in plan.foreign_platforms() {
        let needed = plan.needed_inputs_for(platform);
        if !(needed.contains(&Input::Runtime) || needed.contains(&Input::Wheelhouse)) {
            continue;
        }
        let python = run.python;
        let version = format!("{}.{}", python.version.0, python.version.1);
        if run.project.config.runtime.source_for(platform).is_some() {
            run.reporter.warn(&format!(
                "the runtime archive set for {platform} in [tool.gradient.runtime] is not used yet: the {platform} runtime is assembled from Debian's packages"
            ));
        }
        run.reporter.step(&format!(
            "assembling Debian's CPython {version} for {platform}"
        ));
        let started = Instant::now();
        let target_error = |source| DriverError::Target { platform, source };
        let root = tokio::task::block_in_place(|| {
            gradient_python::target_python::debian_python_root(
                platform.deb_arch(),
                &version,
                run.cache,
                &|line| tracing::info!("{platform}: {line}"),
            )
        })
        .map_err(target_error)?;
        let loader_prefix = root.loader_prefix().map_err(|source| DriverError::Io {
            action: "make the loader prefix beside",
            path: root.root.clone(),
            source,
        })?;
        let glibc = root.glibc_version().unwrap_or_else(|| "2.17".into());
        run.reporter.done(
            &format!(
                "{platform} system: Debian {} CPython {version}, {} packages, glibc {glibc}{}",
                root.suite,
                root.packages.len(),
                if root.reused { " (cached)" } else { "" }
            ),
            started.elapsed().as_secs_f64(),
        );
        let mut inputs = Inputs {
            sdist: shared.inputs.sdist.clone(),
            app: shared.inputs.app.clone(),
            sdist_matches_source: shared.inputs.sdist_matches_source.clone(),
            distributions_cached: shared.inputs.distributions_cached,
            wheelhouse: None,
            runtime: None,
            pinned: None,
            target: Some(gradient_core::TargetSystem {
                platform,
                root: root.root.clone(),
                loader_prefix,
                glibc: glibc.clone(),
                python_version: root.python_version(&version),
            }),
        };
        if needed.contains(&Input::Runtime) {
            run.reporter.step(&format!(
                "bundling the {platform} runtime from Debian's CPython"
            ));
            let started = Instant::now();
            let stdlib = gradient_python::runtime::StdlibChoice::of(&run.project.config.runtime);
            let runtime = gradient_python::runtime::build_foreign_runtime(
                &root,
                &stdlib,
                run.options.strict,
                run.cache,
            )
            .await
            .map_err(DriverError::Runtime)?;
            run.reporter.done(
                &format!(
                    "{platform} runtime: {} shared libraries, glibc >= {}{}",
                    runtime.libraries.len(),
                    runtime.glibc.as_deref().unwrap_or("?"),
                    if runtime.reused { " (cached)" } else { "" }
                ),
                started.elapsed().as_secs_f64(),
            );
            inputs.runtime = Some(runtime_files(runtime));
        }
        if let (true, Some(host), Some(app)) = (
            needed.contains(&Input::Wheelhouse),
            &shared.host_wheelhouse,
            &shared.inputs.app,
        ) {
            run.reporter.step(&format!(
                "installing the same versions with the wheels for {platform}"
            ));
            let started = Instant::now();
            let glibc = glibc
                .split_once('.')
                .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
                .unwrap_or((2, 17));
            let work_dir = run.work.join(format!("wheelhouse-{}", platform.machine()));
            let name = gradient_core::normalize_name(app.name());
            let groups = run.lock.map(|l| l.groups.clone()).unwrap_or_default();
            let lock_file_name = run.lock.map(|l| l.name());
            // This platform's last resolution, kept in the cache (the published lock is the
            // host's): reused as it is while its inputs, the host's lock among them, hold.
            let kept = run
                .cache
                .join("foreign-locks")
                .join(format!("{name}-{}", platform.machine()));
            let kept_pylock = kept.with_extension("pylock.toml");
            let kept_lock = kept.with_extension("lock.txt");
            let previous_lock = std::fs::read_to_string(&kept_pylock)
                .ok()
                .zip(std::fs::read_to_string(&kept_lock).ok());
            let wheelhouse = build_wheelhouse(WheelhouseRequest {
                python,
                installer: run.installer,
                cache_root: run.cache,
                app_wheel: &app.path,
                app_name: &name,
                app_version: app.version(),
                extras: &run.project.config.extras,
                groups: &groups,
                requires_dist: &app.info.metadata.requires_dist,
                locked: project_lock(run.lock, lock_file_name.as_deref()),
                previous_lock,
                find_links: run.options.find_links.as_deref(),
                work_dir: &work_dir,
                foreign: Some(gradient_python::wheelhouse::Foreign {
                    target: gradient_python::wheel_target::WheelTarget { platform, glibc },
                    host,
                }),
            })
            .await?;
            if !wheelhouse.lock_reused {
                // A cache that cannot keep it costs a resolution next time, nothing more.
                let kept_dir = kept.parent().expect("in the cache");
                let _ = std::fs::create_dir_all(kept_dir)
                    .and_then(|()| write_atomically(&kept_pylock, wheelhouse.pylock.as_bytes()))
                    .and_then(|()| write_atomically(&kept_lock, wheelhouse.lock.as_bytes()));
            }
            // Kept in the work folder: the published lock is the host's, and this one holds
            // the same versions with the target's hashes.
            let lock = work_dir.join(format!("{name}-{}.lock.txt", platform.machine()));
            std::fs::write(&lock, &wheelhouse.lock).map_err(|source| DriverError::Io {
                action: "write",
                path: lock.clone(),
                source,
            })?;
            run.reporter.done(
                &format!(
                    "{platform} wheelhouse: {} packages ({}{})",
                    wheelhouse.packages.len(),
                    if wheelhouse.lock_reused {
                        "lock reused, "
                    } else {
                        ""
                    },
                    if wheelhouse.site_reused {
                        "installed tree cached"
                    } else {
                        "installed"
                    }
                ),
                started.elapsed().as_secs_f64(),
            );
            inputs.wheelhouse = Some(WheelhouseFiles {
                site: wheelhouse.site,
                lock,
                packages: wheelhouse.packages,
            });
        }
        targets.insert(platform, inputs);
    }
    Ok(targets)
}

/// The sdist and the wheel, then the wheelhouse (which resolves the wheel's requirements).
async fn build_distributions_and_wheelhouse(
    needed: &BTreeSet<Input>,
    run: &InputRun<'_>,
) -> Result<SharedInputs, DriverError> {
    let InputRun {
        project,
        python,
        reporter,
        ..
    } = run;
    let mut shared = SharedInputs {
        inputs: Inputs::default(),
        targets: BTreeMap::new(),
        host_wheelhouse: None,
        seconds: BTreeMap::new(),
        app: None,
        records: Vec::new(),
    };
    let want_wheel = needed.contains(&Input::Wheel) || needed.contains(&Input::Wheelhouse);
    if !(needed.contains(&Input::Sdist) || want_wheel) {
        return Ok(shared);
    }
    let what = match (needed.contains(&Input::Sdist), want_wheel) {
        (true, true) => "sdist and wheel",
        (true, false) => "sdist",
        _ => "wheel",
    };
    // Said before the cache is looked at: the next line tells built from reused.
    reporter.step(&format!(
        "{what} of {} through {}",
        project.display_name(),
        project.build_system.backend
    ));
    let started = Instant::now();
    let dists = build_distributions(BuildRequest {
        project,
        python,
        installer: run.installer,
        cache_root: run.cache,
        work_dir: &run.work.join("distributions"),
        source_date: run.source_date,
        route: run.options.route,
        want_sdist: needed.contains(&Input::Sdist),
        want_wheel,
        use_cache: !run.options.rebuild,
        out_dir: Some(run.out_dir),
        hook_timeout: run.options.hook_timeout,
    })
    .await
    .map_err(|source| DriverError::Input {
        input: what,
        source,
    })?;
    let message = match (dists.cached, dists.env_reused) {
        (true, _) => format!("reused the cached {what}"),
        (false, true) => format!("built {what}"),
        (false, false) => format!("built {what} (new build environment)"),
    };
    reporter.done(&message, started.elapsed().as_secs_f64());

    shared.seconds.insert(Input::Sdist, dists.sdist_seconds);
    shared.seconds.insert(Input::Wheel, dists.wheel_seconds);
    let file_name = |path: &Path| {
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
    };
    let metadata = match (&dists.wheel, &dists.sdist_metadata) {
        (Some((_, info)), _) => Some(&info.metadata),
        (None, metadata) => metadata.as_ref(),
    };
    shared.app = metadata.map(|metadata| AppIdentity {
        name: metadata.name.clone(),
        version: Some(metadata.version.clone()),
        sdist_file: dists.sdist.as_deref().and_then(file_name),
        wheel_file: dists.wheel.as_ref().and_then(|(path, _)| file_name(path)),
    });
    shared.inputs.sdist_matches_source = dists.sdist_matches_source;
    shared.inputs.distributions_cached = dists.cached;

    shared.inputs.sdist = dists.sdist;
    if let (Some(lock), true) = (run.lock, want_wheel) {
        let pinned = run.work.join("pinned-by-the-project-lock.txt");
        let packages: Vec<&gradient_lock::Package> = lock.packages.iter().collect();
        let text = gradient_lock::requirements_text(
            &[format!("The pins of {} for this platform.", lock.name())],
            &packages,
        );
        std::fs::write(&pinned, text).map_err(|source| DriverError::Io {
            action: "write",
            path: pinned.clone(),
            source,
        })?;
        shared.inputs.pinned = Some(pinned);
    }

    if let (true, Some((wheel, info))) = (needed.contains(&Input::Wheelhouse), &dists.wheel) {
        let name = gradient_core::normalize_name(&info.metadata.name);
        let lock_name = format!("{name}-{}.lock.txt", info.metadata.version);
        let pylock_name = format!("pylock.{name}.toml");
        let lock_file_name = run.lock.map(|l| l.name());
        match (run.lock, &lock_file_name) {
            (Some(lock), Some(file)) => {
                reporter.step(&format!(
                    "installing the dependencies of {name} as {file} locks them"
                ));
                for line in lock.disagreements.iter() {
                    reporter.warn(line);
                }
                if !lock.judged {
                    reporter.warn(&format!(
                        "{file} is used as it is: the project's dependencies are dynamic, so whether it is current cannot be told before the build"
                    ));
                }
                if !lock.is_current() {
                    reporter.warn(&format!(
                        "{file} is out of date with pyproject.toml, and is used as it is (--locked makes this an error):\n  {}",
                        lock.differences.join("\n  ")
                    ));
                }
            }
            _ => reporter.step(&format!(
                "locking and installing the dependencies of {name}"
            )),
        }
        let started = Instant::now();
        let groups = run.lock.map(|l| l.groups.clone()).unwrap_or_default();
        let wheelhouse = build_wheelhouse(WheelhouseRequest {
            python,
            installer: run.installer,
            cache_root: run.cache,
            app_wheel: wheel,
            app_name: &name,
            app_version: &info.metadata.version,
            extras: &project.config.extras,
            groups: &groups,
            requires_dist: &info.metadata.requires_dist,
            locked: project_lock(run.lock, lock_file_name.as_deref()),
            previous_lock: std::fs::read_to_string(run.out_dir.join(&pylock_name))
                .ok()
                .zip(std::fs::read_to_string(run.out_dir.join(&lock_name)).ok()),
            find_links: run.options.find_links.as_deref(),
            work_dir: &run.work.join("wheelhouse"),
            foreign: None,
        })
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        reporter.done(
            &format!(
                "wheelhouse: {} packages ({}, {})",
                wheelhouse.packages.len(),
                match (&lock_file_name, wheelhouse.lock_reused) {
                    (Some(file), _) => format!("from {file}"),
                    (None, true) => "lock reused".to_string(),
                    (None, false) => "resolved".to_string(),
                },
                if wheelhouse.site_reused {
                    "installed tree cached"
                } else {
                    "installed"
                }
            ),
            seconds,
        );
        shared.seconds.insert(Input::Wheelhouse, seconds);
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| DriverError::Publish {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(run.out_dir).map_err(io("create", run.out_dir))?;
        // The hashed requirements the installer read, and the PEP 751 lock of what the
        // tree carries, each published beside the artifacts.
        let mut published_lock = None;
        for (file, text) in [
            (&lock_name, &wheelhouse.lock),
            (&pylock_name, &wheelhouse.pylock),
        ] {
            let path = run.work.join(file);
            std::fs::write(&path, text).map_err(io("write", &path))?;
            let published =
                publish_file(&path, run.out_dir).map_err(io("write into", run.out_dir))?;
            shared.records.push(InputRecord {
                input: Input::Wheelhouse,
                file: file.clone(),
                sha256: published.sha256,
                size: published.size,
            });
            published_lock.get_or_insert(published.path);
        }
        shared.inputs.wheelhouse = Some(WheelhouseFiles {
            site: wheelhouse.site.clone(),
            lock: published_lock.expect("the lock was published"),
            packages: wheelhouse.packages.clone(),
        });
        shared.host_wheelhouse = Some(wheelhouse);
    }
    shared.inputs.app = dists
        .wheel
        .map(|(path, info)| gradient_wheel::app_wheel(project, path, info));

    Ok(shared)
}

/// The runtime bundle, and how long it took.
async fn build_runtime(
    run: &InputRun<'_>,
) -> Result<(gradient_core::RuntimeFiles, f64), DriverError> {
    let InputRun {
        project,
        python,
        reporter,
        ..
    } = *run;
    let source = project.config.runtime.host_source();
    match &source {
        Some(RuntimeSource::Archive(archive)) => reporter.step(&format!(
            "bundling the runtime from {}",
            project.root.join(archive).display()
        )),
        Some(RuntimeSource::Download { url, .. }) => {
            reporter.step(&format!("bundling the runtime from {url}"))
        }
        None => reporter.step(&format!("bundling the runtime from {python}")),
    }
    let started = Instant::now();
    let archive = match &source {
        Some(RuntimeSource::Archive(archive)) => Some(project.root.join(archive)),
        // Fetched once into the cache; later builds only hash it again.
        Some(RuntimeSource::Download { url, sha256 }) => Some(
            gradient_python::runtime::fetch_runtime_archive(url, sha256, run.cache, &|_, _| {})
                .await
                .map_err(DriverError::Runtime)?,
        ),
        None => None,
    };
    let source = match &archive {
        Some(archive) => {
            let host = gradient_core::Platform::host().ok_or_else(|| {
                DriverError::Runtime(gradient_python::runtime::RuntimeError::Unsupported {
                    python: archive.clone(),
                    reason: format!(
                        "this machine ({}) is none of the platforms gradient builds for",
                        std::env::consts::ARCH
                    ),
                })
            })?;
            gradient_python::runtime::unpack_runtime_archive(archive, host, python, run.cache)
                .await
                .map_err(DriverError::Runtime)?
        }
        None => python.clone(),
    };
    let stdlib = gradient_python::runtime::StdlibChoice::of(&project.config.runtime);
    let runtime =
        gradient_python::runtime::build_runtime(&source, &stdlib, run.options.strict, run.cache)
            .await
            .map_err(DriverError::Runtime)?;
    for (library, module) in &runtime.missing {
        reporter.warn(&format!(
            "{module} needs {library}, which is not on this machine: that module will fail to import (--strict makes this an error)"
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    reporter.done(
        &format!(
            "runtime: CPython {}, {} shared libraries, glibc >= {}{}",
            source.full_version(),
            runtime.libraries.len(),
            runtime.glibc.as_deref().unwrap_or("?"),
            if runtime.reused { " (cached)" } else { "" }
        ),
        seconds,
    );
    Ok((runtime_files(runtime), seconds))
}

/// The project's lock as the wheelhouse reads it, when the dependencies come from one.
fn project_lock<'a>(
    lock: Option<&'a crate::project_lock::PlannedLock>,
    file_name: Option<&'a str>,
) -> Option<ProjectLock<'a>> {
    lock.zip(file_name).map(|(lock, file_name)| ProjectLock {
        file_name,
        sha256: &lock.sha256,
        packages: &lock.packages,
    })
}

/// A bundle as the tiers see it.
fn runtime_files(runtime: gradient_python::runtime::Runtime) -> gradient_core::RuntimeFiles {
    gradient_core::RuntimeFiles {
        id: runtime.identity(),
        dir: runtime.dir,
        python: runtime.python,
        site_packages: runtime.site_packages,
        glibc: runtime.glibc,
    }
}

struct TierRun<'a> {
    cache: &'a Path,
    project: &'a Arc<Project>,
    python: &'a Arc<InterpreterFacts>,
    /// The inputs of the entry's platform.
    inputs: &'a Arc<Inputs>,
    /// Those of every platform the entry builds for (`inputs` first).
    targets: &'a [Arc<Inputs>],
    /// The host platform's: the reference venv the smoke tests compare with is made from
    /// them, whatever the platform of the file under test.
    host_inputs: &'a Arc<Inputs>,
    work: &'a Path,
    out_dir: &'a Path,
    source_date: SourceDate,
    options: &'a BuildOptions,
    input_seconds: &'a BTreeMap<Input, f64>,
    /// Every file published into `out_dir` in this run.
    published_files: &'a std::sync::Mutex<Vec<PathBuf>>,
    /// The plain venv the smoke tests compare with.
    reference: &'a LazyReference<'a>,
    builds: &'a SharedBuilds,
    reporter: &'a dyn Reporter,
}

/// How a tier's run ended.
type TierResult = Result<FinishedTier, TierFailure>;

/// The builds of a run, by the tier that builds and its platform: a tier the plan delivers
/// from another's build (docker, from oci's image) awaits that same build rather than making
/// its own.
#[derive(Default)]
struct SharedBuilds(std::sync::Mutex<BTreeMap<(Tier, Platform), Arc<BuildCell>>>);

/// The name of an entry's folders in the run's work folder (`frozen`, or `frozen-aarch64`
/// for another platform's build): one per build, so that two never share one.
fn work_name(tier: Tier, platform: Platform) -> String {
    match platform.is_host() {
        true => tier.name().to_string(),
        false => format!("{}-{}", tier.name(), platform.machine()),
    }
}

/// A build's artifacts, or its error (chain and hint, for every tier that awaits it).
type BuildCell = tokio::sync::OnceCell<Result<Vec<Artifact>, (String, Option<String>)>>;

impl SharedBuilds {
    /// `entry`'s artifacts, built by its builder in the builder's work folder (once per
    /// run), as `entry`'s tier's.
    async fn build(
        &self,
        entry: &PlanEntry,
        cx: &BuildContext,
    ) -> Result<Vec<Artifact>, TierFailure> {
        let builder = entry.builder.tier();
        let cell = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((builder, entry.platform))
            .or_default()
            .clone();
        let built = cell
            .get_or_init(|| async {
                let cx = BuildContext {
                    work_dir: cx
                        .work_dir
                        .with_file_name(work_name(builder, entry.platform)),
                    ..cx.clone()
                };
                std::fs::create_dir_all(&cx.work_dir).map_err(|e| (e.to_string(), None))?;
                entry
                    .builder
                    .build(&cx)
                    .await
                    .map_err(|e| (e.chain(), e.hint().map(str::to_string)))
            })
            .await;
        let artifacts = built.clone().map_err(|(error, hint)| TierFailure {
            records: Vec::new(),
            error,
            hint,
            refused: None,
        })?;
        Ok(artifacts
            .into_iter()
            .map(|artifact| Artifact {
                tier: entry.tier,
                ..artifact
            })
            .collect())
    }
}

impl TierRun<'_> {
    fn published(&self, path: &Path) {
        let mut files = self
            .published_files
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        files.push(path.to_path_buf());
    }
}

/// A tier that ran to its end (its smoke tests may have failed), and what is left to do once
/// every tier has: measure start-up, keep the build in the cache.
struct FinishedTier {
    tier: Tier,
    records: Vec<ArtifactRecord>,
    /// The artifacts smoke-tested in this run and passing, by record index, with their
    /// smoke test's context: their start-up is measured next.
    to_time: Vec<(usize, Artifact, SmokeContext)>,
    slot: Option<Slot>,
    /// Taken from the cache rather than built.
    reused: bool,
    /// A smoke test ran in this run.
    smoked: bool,
}

/// A tier that failed: why, and what it had published before it failed.
struct TierFailure {
    records: Vec<ArtifactRecord>,
    /// The error and its causes ([`gradient_core::error_chain`]), and its hint.
    error: String,
    hint: Option<String>,
    /// The tier refused this project before building ([`Backend::check`]): a skip.
    refused: Option<gradient_core::Unavailable>,
}

impl From<String> for TierFailure {
    fn from(error: String) -> Self {
        TierFailure {
            records: Vec::new(),
            error,
            hint: None,
            refused: None,
        }
    }
}

impl From<BackendError> for TierFailure {
    fn from(error: BackendError) -> Self {
        TierFailure {
            records: Vec::new(),
            error: error.chain(),
            hint: error.hint().map(str::to_string),
            refused: None,
        }
    }
}

/// Build (or reuse from the tier cache), publish, deliver and smoke-test one tier, and
/// rebuild it to compare when asked. Errors come back as text for the summary.
async fn run_tier(entry: &PlanEntry, run: TierRun<'_>) -> TierResult {
    let backend = entry.backend.as_ref();
    let tier = entry.tier;
    let work_dir = run.work.join(work_name(tier, entry.platform));
    std::fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let cx = BuildContext {
        project: run.project.clone(),
        python: run.python.clone(),
        inputs: run.inputs.clone(),
        work_dir,
        source_date: run.source_date,
        cache_dir: run.cache.to_path_buf(),
        image_tags: run.options.tags.clone(),
        targets: run.targets.to_vec(),
    };
    let slot = Slot::for_tier(
        run.cache,
        KeyParts {
            backend,
            project: run.project,
            python: run.python,
            targets: run.targets,
            source_date: run.source_date,
            tags: &run.options.tags,
            strict: run.options.strict,
        },
    );
    let reused = match (&slot, run.options.rebuild) {
        (Some(slot), false) => reuse(slot, &run, started),
        _ => None,
    };
    let is_reused = reused.is_some();
    let published = match reused {
        Some(published) => published,
        None => {
            if let Err(refused) = backend.check(&cx) {
                run.reporter.warn(&format!("skipping {tier}: {refused}"));
                return Err(TierFailure {
                    records: Vec::new(),
                    error: format!("cannot be built for this project: {}", refused.reason),
                    hint: refused.hint.clone(),
                    refused: Some(refused),
                });
            }
            build_and_publish(entry, &cx, &run, started).await?
        }
    };

    let mut records = Vec::new();
    let mut smoked = false;
    let mut to_time = Vec::new();
    for (artifact, mut record) in published {
        // Delivery is a fact of this run: a cached record's "loaded into Docker" is not.
        record.delivered = None;
        let delivering = Instant::now();
        match backend.deliver(&artifact, &cx).await {
            Ok(delivered) => {
                if let Some(what) = &delivered {
                    let seconds = delivering.elapsed().as_secs_f64();
                    run.reporter.tier_step_done(tier, what, seconds);
                }
                record.delivered = delivered;
            }
            Err(error) => {
                // The file stays published and listed; the tier fails, and a smoke result
                // cached from an earlier run, whose delivery worked, does not speak for this one.
                run.reporter
                    .tier_warn(tier, &render(&error.chain(), error.hint()));
                record.smoke = None;
                records.push(record);
                return Err(TierFailure {
                    records,
                    ..error.into()
                });
            }
        }
        let passed_before = record.smoke.as_ref().is_some_and(|s| s.passed);
        // A file for another platform is run under emulation: without an emulator it is
        // published unchecked, like one whose checker is missing.
        let unchecked = backend
            .smoke_needs()
            .err()
            .or_else(|| {
                let platform = artifact.platform?;
                platform
                    .runnable_here()
                    .err()
                    .map(|reason| gradient_core::Unavailable { reason, hint: None })
            })
            .filter(|_| !checkers_required());
        if let (Some(missing), true) = (&unchecked, run.options.smoke) {
            run.reporter.tier_warn(tier, &format!("{} is published unchecked: {missing}\n  (set GRADIENT_REQUIRE_CHECKERS=1 to fail instead)",
                artifact.file_name()
            ));
            record.smoke = None;
        } else if run.options.smoke && !(is_reused && passed_before) {
            let cx = smoke_context(tier, &artifact, &run).await;
            let smoke = smoke_tier(backend, &artifact, &cx, &run).await;
            if smoke.passed {
                to_time.push((records.len(), artifact.clone(), cx));
            }
            record.smoke = Some(smoke);
            smoked = true;
        } else if run.options.smoke {
            run.reporter.tier_step_done(
                tier,
                "smoke test passed before with this file (cached)",
                0.0,
            );
        } else if !(is_reused && passed_before) {
            // Not smoke-tested in this run: a failure an earlier run recorded for this file
            // does not fail a run that was asked not to smoke-test.
            record.smoke = None;
        }
        records.push(record);
    }
    if run.options.verify_reproducible {
        verify_reproducible(entry, &cx, &mut records, &run).await;
    }
    Ok(FinishedTier {
        tier,
        records,
        to_time,
        slot,
        reused: is_reused,
        smoked,
    })
}

/// Measure the start-up of a finished tier's freshly smoke-tested artifacts. A measurement
/// that fails is said on stderr; it does not fail the tier, whose smoke test passed.
async fn measure_startup(
    backend: &dyn Backend,
    finished: &mut FinishedTier,
    reporter: &dyn Reporter,
) {
    let tier = finished.tier;
    for (index, artifact, cx) in std::mem::take(&mut finished.to_time) {
        let started = Instant::now();
        match backend.startup(&artifact, &cx).await {
            Ok(Some(startup)) => {
                reporter.tier_step_done(
                    tier,
                    &format!(
                        "`{}` started and finished in {:.3}s on its first run, {:.3}s warm",
                        startup.command, startup.first_run_seconds, startup.warm_seconds
                    ),
                    started.elapsed().as_secs_f64(),
                );
                if let Some(smoke) = &mut finished.records[index].smoke {
                    smoke.startup = Some(startup);
                }
            }
            Ok(None) => {}
            Err(error) => reporter.tier_warn(
                tier,
                &format!(
                    "start-up not measured: {}",
                    render(&error.chain(), error.hint())
                ),
            ),
        }
    }
}

/// Take back the files this run published that no record lists: their tier was stopped by
/// `--fail-fast`, or failed between two of its files. The output folder then holds nothing
/// the manifest does not describe; files the run did not write are never touched, and a
/// file with the very bytes an earlier run listed (`listed_before`: by name, the sha256;
/// read only when some file is unlisted) stays, to be listed again from that run's record.
fn remove_unlisted(
    published: Vec<PathBuf>,
    records: &[ArtifactRecord],
    listed_before: impl FnOnce() -> BTreeMap<String, String>,
    reporter: &dyn Reporter,
) {
    let listed: BTreeSet<&str> = records.iter().map(|r| r.file.as_str()).collect();
    let unlisted: Vec<(PathBuf, String)> = published
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            (!listed.contains(name.as_str())).then_some((path, name))
        })
        .collect();
    if unlisted.is_empty() {
        return;
    }
    let listed_before = listed_before();
    for (path, name) in unlisted {
        let as_before = listed_before.get(&name).is_some_and(|sha256| {
            crate::publish::file_digest(&path).is_ok_and(|digest| &digest == sha256)
        });
        if !as_before && path.is_file() {
            let _ = std::fs::remove_file(&path);
            reporter.warn(&format!(
                "removed `{}` from the output folder: its tier stopped before it could be listed",
                path.display()
            ));
        }
    }
}

/// Keep what a finished tier built for the next run (or its new smoke result).
fn keep_in_cache(finished: &FinishedTier, out_dir: &Path, reporter: &dyn Reporter) {
    let Some(slot) = &finished.slot else {
        return;
    };
    let records = &finished.records;
    let entry = tier_cache::Entry {
        records: records
            .iter()
            .map(|r| ArtifactRecord {
                reused: false,
                reproducible: None,
                ..r.clone()
            })
            .collect(),
    };
    let stored = if !finished.reused {
        let files: Vec<PathBuf> = records.iter().map(|r| out_dir.join(&r.file)).collect();
        slot.store(&files, &entry)
    } else if finished.smoked {
        slot.update(&entry)
    } else {
        Ok(())
    };
    if let Err(error) = stored {
        reporter.tier_warn(
            finished.tier,
            &format!(
                "could not keep the build in the cache `{}`: {error}",
                slot.dir.display()
            ),
        );
    }
}

/// A tier's artifacts, published, with their records (no delivery or smoke result yet).
type PublishedTier = Vec<(Artifact, ArtifactRecord)>;

/// Build the tier into its work folder and publish what it wrote into the output folder.
async fn build_and_publish(
    entry: &PlanEntry,
    cx: &BuildContext,
    run: &TierRun<'_>,
    started: Instant,
) -> Result<PublishedTier, TierFailure> {
    let tier = entry.tier;
    let artifacts = run.builds.build(entry, cx).await?;
    // A tier's build time includes the shared input it stands on.
    let input_time = entry
        .builder
        .inputs()
        .first()
        .and_then(|input| run.input_seconds.get(input))
        .copied()
        .unwrap_or(0.0);
    let build_seconds = started.elapsed().as_secs_f64() + input_time;

    std::fs::create_dir_all(run.out_dir)
        .map_err(|e| format!("failed to create `{}`: {e}", run.out_dir.display()))?;
    let mut published = Vec::new();
    for artifact in artifacts {
        let file = publish_file(&artifact.path, run.out_dir).map_err(|e| {
            format!(
                "failed to write `{}` into `{}`: {e}",
                artifact.file_name(),
                run.out_dir.display()
            )
        })?;
        run.published(&file.path);
        let artifact = Artifact {
            path: file.path.clone(),
            ..artifact
        };
        run.reporter.tier_step_done(
            tier,
            &format!("wrote {}", artifact.file_name()),
            build_seconds,
        );
        let record = ArtifactRecord {
            tier,
            file: artifact.file_name(),
            sha256: file.sha256,
            size: file.size,
            build_seconds,
            target_needs: artifact.needs.clone(),
            platform: artifact.platform,
            smoke: None,
            delivered: None,
            reused: false,
            reproducible: None,
            sbom: None,
        };
        published.push((artifact, record));
    }
    Ok(published)
}

/// The tier's files from the cache, published (copied only when the output folder does not
/// already hold them); `None` when there is nothing usable, said on stderr when an entry
/// was damaged.
fn reuse(slot: &Slot, run: &TierRun<'_>, started: Instant) -> Option<PublishedTier> {
    let tier_name = slot
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let damaged = |why: String| {
        run.reporter.warn(&format!(
            "the cached build `{tier_name}` is damaged ({why}); building it again"
        ));
        None
    };
    let entry = match slot.lookup() {
        Lookup::Hit(entry) => entry,
        Lookup::Miss => return None,
        Lookup::Damaged(why) => return damaged(why),
    };
    std::fs::create_dir_all(run.out_dir).ok()?;
    let mut published = Vec::new();
    for mut record in entry.records {
        let cached = slot.file(&record.file);
        let out = run.out_dir.join(&record.file);
        if !tier_cache::same_file(&out, &cached) {
            match publish_checked(&cached, run.out_dir, Some(&record.sha256)) {
                Ok(_) => {
                    run.published(&out);
                    let modified = std::fs::metadata(&cached).and_then(|m| m.modified());
                    let _ = modified.and_then(|time| {
                        std::fs::File::options()
                            .write(true)
                            .open(&out)?
                            .set_modified(time)
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                    slot.remove();
                    return damaged(format!("`{}`: {error}", record.file));
                }
                Err(_) => return None,
            }
        }
        record.build_seconds = started.elapsed().as_secs_f64();
        record.reused = true;
        run.reporter.tier_step_done(
            record.tier,
            &format!("reused {} (nothing it is built from changed)", record.file),
            record.build_seconds,
        );
        let artifact = Artifact {
            tier: record.tier,
            path: out,
            needs: record.target_needs.clone(),
            platform: record.platform,
        };
        published.push((artifact, record));
    }
    Some(published)
}

/// Build the tier once more, apart, and record for each file whether the bytes are the same.
async fn verify_reproducible(
    entry: &PlanEntry,
    cx: &BuildContext,
    records: &mut [ArtifactRecord],
    run: &TierRun<'_>,
) {
    let tier = entry.tier;
    let backend = entry.builder.as_ref();
    let started = Instant::now();
    // A cache of its own, empty: what the first build cached (image layers, packed runtime
    // parts, the stripped runtime) is made again, not compared with itself.
    let work_dir = cx
        .work_dir
        .with_file_name(format!("{}-again", work_name(tier, entry.platform)));
    let again = BuildContext {
        cache_dir: work_dir.join("cache"),
        work_dir,
        ..cx.clone()
    };
    let rebuilt = match std::fs::create_dir_all(&again.work_dir) {
        Ok(()) => backend
            .build(&again)
            .await
            .map_err(|e| render(&e.chain(), e.hint())),
        Err(error) => Err(error.to_string()),
    };
    let artifacts = match rebuilt {
        Ok(artifacts) => artifacts,
        Err(error) => {
            run.reporter
                .tier_warn(tier, &format!("the second build failed: {error}"));
            for record in records.iter_mut() {
                record.reproducible = Some(false);
            }
            return;
        }
    };
    for record in records.iter_mut() {
        let twin = artifacts.iter().find(|a| a.file_name() == record.file);
        let same = twin
            .and_then(|a| crate::publish::file_digest(&a.path).ok())
            .is_some_and(|digest| digest == record.sha256);
        record.reproducible = Some(same);
        if same {
            run.reporter.tier_step_done(
                tier,
                &format!("a second build of {} gave the same bytes", record.file),
                started.elapsed().as_secs_f64(),
            );
        } else {
            run.reporter.tier_warn(
                tier,
                &format!(
                    "a second build of {} gave different bytes: not reproducible",
                    record.file
                ),
            );
        }
    }
}

/// A tier's smoke test context: a scratch folder of its own in the run's work folder, and
/// the reference venv (made now if no tier has asked for it yet).
/// The inputs are those of the artifact's platform (the entry's, for one that serves any).
async fn smoke_context(tier: Tier, artifact: &Artifact, run: &TierRun<'_>) -> SmokeContext {
    let warn = |text: &str| run.reporter.warn(text);
    let reference = run.reference.get(run.host_inputs, &warn).await;
    let inputs = artifact
        .platform
        .and_then(|platform| {
            run.targets
                .iter()
                .find(|inputs| inputs.platform() == Some(platform))
        })
        .unwrap_or(run.inputs);
    let platform = inputs
        .platform()
        .unwrap_or(gradient_core::Platform::LinuxAmd64);
    SmokeContext {
        reference,
        project: run.project.clone(),
        python: run.python.clone(),
        inputs: inputs.clone(),
        scratch: run
            .work
            .join(format!("smoke-{}", work_name(tier, platform))),
        find_links: run.options.find_links.clone(),
        image_tags: run.options.tags.clone(),
    }
}

async fn smoke_tier(
    backend: &dyn Backend,
    artifact: &Artifact,
    cx: &SmokeContext,
    run: &TierRun<'_>,
) -> SmokeRecord {
    let tier = backend.tier();
    let started = Instant::now();
    let outcome = match std::fs::create_dir_all(&cx.scratch) {
        Ok(()) => backend.smoke(artifact, cx).await,
        Err(err) => Err(err.into()),
    };
    // A smoke test that cannot even run is a failed smoke test of a published artifact:
    // recorded as such, so the manifest still lists the file.
    let mut report = outcome.unwrap_or_else(|err| SmokeReport {
        checks: vec![SmokeCheck {
            command: format!("smoke-test {}", artifact.file_name()),
            passed: false,
            exit_code: None,
            seconds: started.elapsed().as_secs_f64(),
            detail: format!(
                "the smoke test could not run: {}",
                render(&err.chain(), err.hint())
            ),
        }],
    });
    // Then the same checks as in the reference venv, with the artifact's own Python.
    let mut reference_tally = None;
    if let Some(reference) = &cx.reference {
        if let Some((check, tally)) =
            crate::differential::compare_with_reference(backend, artifact, cx, reference).await
        {
            report.checks.push(check);
            reference_tally = tally;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    let passed = report.passed();
    for check in &report.checks {
        if check.passed {
            run.reporter.tier_step_done(
                tier,
                &format!("smoke `{}` ok", check.command),
                check.seconds,
            );
        } else {
            run.reporter.tier_warn(
                tier,
                &format!("smoke `{}` failed: {}", check.command, check.detail),
            );
        }
    }
    SmokeRecord {
        passed,
        seconds,
        checks: report.checks,
        reference: reference_tally,
        startup: None,
    }
}

/// Whether a smoke test whose checker is missing on this host must fail rather than be
/// skipped: `GRADIENT_REQUIRE_CHECKERS=1` (CI sets it, as it sets `GRADIENT_REQUIRE_DOCKER`).
fn checkers_required() -> bool {
    std::env::var("GRADIENT_REQUIRE_CHECKERS").is_ok_and(|v| v == "1")
}

/// Smoke tests run every artifact from the work folder: when the temporary folder cannot run
/// programs (a `noexec` mount), say so before building instead of failing five tiers with
/// "Permission denied".
fn check_can_execute(work: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    let probe = work.join("can-execute");
    let io = |source| DriverError::Io {
        action: "write a probe into",
        path: work.to_path_buf(),
        source,
    };
    std::fs::write(&probe, "#!/bin/sh\nexit 0\n").map_err(io)?;
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    // A fork elsewhere in this process may briefly hold the file open for writing.
    let mut result = std::process::Command::new(&probe).status();
    for _ in 0..20 {
        match &result {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                result = std::process::Command::new(&probe).status();
            }
            _ => break,
        }
    }
    let _ = std::fs::remove_file(&probe);
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(DriverError::NoExec {
            path: work.parent().unwrap_or(work).to_path_buf(),
        }),
        Err(source) => Err(DriverError::Io {
            action: "run a probe in",
            path: work.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Said(std::sync::Mutex<Vec<String>>);

    impl Reporter for Said {
        fn report(&self, event: crate::Event<'_>) {
            if event.kind == crate::EventKind::Warning {
                self.0.lock().unwrap().push(event.text.to_string());
            }
        }
    }

    #[test]
    fn published_files_no_record_lists_are_taken_back_and_nothing_else() {
        let out = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let path = out.path().join(name);
            std::fs::write(&path, name).unwrap();
            path
        };
        let listed = file("app-1.0.pyz");
        let stopped = file("app-1.0-linux-x86_64");
        let users_own = file("notes.txt");
        // Published again with the bytes an earlier run listed, then stopped: it stays.
        let as_before = file("app-1.0.oci.tar");
        let mut listed_before = BTreeMap::new();
        listed_before.insert(
            "app-1.0.oci.tar".to_string(),
            crate::publish::file_digest(&as_before).unwrap(),
        );
        listed_before.insert("app-1.0-linux-x86_64".to_string(), "0".repeat(64));
        let record = ArtifactRecord {
            tier: Tier::Zipapp,
            file: "app-1.0.pyz".into(),
            sha256: "ab".repeat(32),
            size: 1,
            build_seconds: 0.0,
            target_needs: Tier::Zipapp.generic_needs(),
            platform: None,
            smoke: None,
            delivered: None,
            reused: false,
            reproducible: None,
            sbom: None,
        };
        let said = Said::default();
        remove_unlisted(
            vec![listed.clone(), stopped.clone(), as_before.clone()],
            &[record],
            || listed_before,
            &said,
        );
        assert!(listed.is_file());
        assert!(!stopped.exists(), "the stopped tier's file is taken back");
        assert!(as_before.is_file(), "an earlier run's listed bytes stay");
        assert!(users_own.is_file(), "a file the run did not write stays");
        let said = said.0.into_inner().unwrap();
        assert_eq!(said.len(), 1);
        assert!(said[0].contains("app-1.0-linux-x86_64"), "{said:?}");
    }
}
