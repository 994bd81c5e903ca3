//! The plan of a run, resolved once: every decision a build makes before it builds
//! anything. [`Plan::resolve`] reads the options and the project and decides the output
//! folder, the cache, the build interpreter, the source date, the installer, which tiers
//! this host builds and why the others are skipped, the shared inputs they stand on, and
//! the name of every file each tier writes. `build` executes a plan; `gradient plan` shows
//! one (`--format github-matrix` turns its buildable tiers into a CI job matrix); `doctor`
//! reads the host part ([`survey_host`]); `advise` reads the tiers' target needs.
//!
//! A plan entry is one build of a tier, for the platforms its files serve, as the tier's
//! [`PlatformScope`] lays it out: an sdist once for all, a frozen executable once per
//! platform, an image index once with an image for each. A tier this version builds for the
//! host only is unavailable for another platform (a build naming it is refused before any
//! work; `--all` skips it, and a preview gives the reason).

use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{registry, resolve_source_date, BuildOptions, DriverError, Reporter};
use gradient_core::{
    python_satisfies, AppIdentity, Backend, Host, Input, InterpreterFacts, PlannedFile, Platform,
    PlatformScope, Project, SourceDate, Tier, Unavailable,
};
use gradient_python::{cache_root, find_interpreter, Installer, PythonRequest};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `build`: what the run cannot do is an error, before any work.
    Build,
    /// `gradient plan`: what a build would refuse is each tier's reason instead (a bad
    /// `SOURCE_DATE_EPOCH` is refused here too); the container engine is asked.
    Preview,
    /// `advise`: what the tiers ask of a target. Neither this host's container engine nor
    /// the source date matters.
    Advice,
}

/// One build of a tier, for the platforms its files serve.
#[derive(Clone)]
pub struct PlanEntry {
    pub tier: Tier,
    /// The platform whose inputs the build takes (the first of `platforms`).
    pub platform: Platform,
    /// Every platform the build's files serve: `platform` alone for a tier built per
    /// platform, all of the run's for one built once for all.
    pub platforms: Vec<Platform>,
    pub backend: Arc<dyn Backend>,
    /// The backend whose `build` makes this tier's files: itself, or the tier it delivers
    /// (docker delivers the oci tier's tarball).
    pub builder: Arc<dyn Backend>,
    /// `None` when this host builds it; else why not.
    pub unavailable: Option<Unavailable>,
    /// The files the tier writes into the output folder: named from `pyproject.toml` in a
    /// preview, from the built distributions in a build (after [`Plan::settle`]).
    pub files: Vec<PlannedFile>,
}

/// Every decision of a run, made once.
pub struct Plan {
    pub project: Arc<Project>,
    /// Absolute.
    pub out_dir: PathBuf,
    pub cache: PathBuf,
    /// The build interpreter; `None` only in a preview, when none was found (`python_error`).
    pub python: Option<Arc<InterpreterFacts>>,
    pub python_error: Option<gradient_python::PythonError>,
    pub installer: Installer,
    pub source_date: SourceDate,
    /// The app's name and version (and, once built, its distributions' names).
    pub app: AppIdentity,
    /// The requested tiers this build of gradient has, along the gradient.
    pub entries: Vec<PlanEntry>,
    /// The project's lock the dependencies come from; `None` when they are resolved (no
    /// lock, `--no-lock`, no tier carries them, or no interpreter to choose for).
    pub lock: Option<crate::project_lock::PlannedLock>,
}

impl Plan {
    /// Decide everything `options` asks for. A build refuses what it cannot do (no tier, a
    /// tier not in this version, a default image tag the version cannot make, an unusable
    /// output folder, no interpreter, one the project excludes); a preview gives each tier
    /// that reason instead (see [`Purpose`]).
    pub async fn resolve(
        options: &BuildOptions,
        purpose: Purpose,
        reporter: &dyn Reporter,
    ) -> Result<Plan, DriverError> {
        let mut project = Project::load(&options.project_dir)?;
        if let Some(entry) = &options.entry {
            project.config.entry = Some(entry.clone());
        }
        let project = Arc::new(project);
        let building = purpose == Purpose::Build;
        if building {
            if options.tiers.is_empty() {
                return Err(DriverError::NothingRequested);
            }
            if let Some(tier) = options.tiers.iter().find(|t| !registry::is_available(**t)) {
                return Err(DriverError::Planned {
                    tier: *tier,
                    available: registry::available_names(),
                });
            }
        }
        // `--platform`, else `[tool.gradient] platforms`, else the host's. A build refuses
        // a platform this version does not build for, before any work.
        let platforms = if purpose == Purpose::Advice {
            // Advice is about the artifacts as this host builds them.
            Platform::host().into_iter().collect()
        } else if !options.platforms.is_empty() {
            gradient_core::unique_platforms(options.platforms.iter().copied())
        } else if let Some(configured) = &project.config.platforms {
            gradient_core::unique_platforms(configured.iter().copied())
        } else {
            Platform::host().into_iter().collect()
        };
        // What a build refuses and a preview shows as every tier's reason.
        let mut refusal: Option<DriverError> = None;
        let mut refuse = |result: Result<(), DriverError>| match result {
            Err(error) if building => Err(error),
            Err(error) => {
                refusal.get_or_insert(error);
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        refuse(check_default_tags(&project, options))?;
        let out_dir = std::path::absolute(
            options
                .out_dir
                .clone()
                .unwrap_or_else(|| project.root.join("dist")),
        )
        .map_err(|source| DriverError::Io {
            action: "resolve",
            path: project.root.join("dist"),
            source,
        })?;
        refuse(
            crate::publish::check_writable(&out_dir).map_err(|reason| DriverError::Output {
                path: out_dir.clone(),
                reason,
            }),
        )?;
        let cache = match purpose {
            Purpose::Build => crate::locks::usable_cache(
                options.cache_dir.clone().unwrap_or_else(cache_root),
                reporter,
            ),
            Purpose::Preview | Purpose::Advice => {
                options.cache_dir.clone().unwrap_or_else(cache_root)
            }
        };

        let python_request = options
            .python
            .as_deref()
            .or(project.config.python.as_deref());
        // A container engine is asked for only where its answer decides something: a
        // preview shows it, `--all` skips docker without one, a named docker tier fails
        // later with the engine's own error.
        let probe_engine = options.tiers.contains(&Tier::Docker)
            && (purpose == Purpose::Preview || (building && options.all));
        let survey = survey_host(python_request, &cache, probe_engine).await;
        let (python, python_error) = match survey.interpreter {
            Ok(python) => {
                refuse(check_requires_python(&project, &python))?;
                (Some(python), None)
            }
            Err(error) if building => return Err(error.into()),
            Err(error) => (None, Some(error)),
        };
        // A value the build would refuse is refused by a preview too, rather than planned
        // around; advice does not depend on it.
        let source_date = match (purpose, resolve_source_date(&project.root).await) {
            (_, Ok(date)) => date,
            (Purpose::Advice, Err(_)) => SourceDate {
                seconds: gradient_core::FALLBACK_EPOCH,
                origin: gradient_core::SourceDateOrigin::Fixed,
            },
            (_, Err(error)) => return Err(error),
        };
        if let Some(python) = &python {
            tracing::info!("build interpreter: {python}");
        }
        tracing::info!("source date: {source_date}");
        tracing::info!("installer: {}", survey.installer.name());

        let app = AppIdentity {
            name: project.display_name(),
            version: project.version.clone(),
            sdist_file: None,
            wheel_file: None,
        };
        let host = Host {
            interpreter: python.clone(),
            container_engine: survey.container_engine,
        };
        let backends = registry::backends(&survey.installer);
        let requested: BTreeSet<Tier> = options.tiers.iter().copied().collect();
        let mut entries = Vec::new();
        for backend in backends.iter().filter(|b| requested.contains(&b.tier())) {
            let builder = backend
                .delivers()
                .and_then(|tier| backends.iter().find(|b| b.tier() == tier))
                .unwrap_or(backend)
                .clone();
            let scope = builder.platform_scope();
            let groups: Vec<Vec<Platform>> = match scope {
                PlatformScope::Any | PlatformScope::Together => vec![platforms.clone()],
                PlatformScope::Each | PlatformScope::HostOnly => {
                    platforms.iter().map(|p| vec![*p]).collect()
                }
            };
            for group in groups {
                let foreign = foreign_reason(backend.tier(), scope, &group);
                // A tier named with --to that this version cannot build for a platform asked
                // for: refused before any work (--all skips it).
                if let (true, false, Some(_)) = (building, options.all, &foreign) {
                    if scope == PlatformScope::HostOnly {
                        return Err(DriverError::Platform {
                            tier: backend.tier(),
                            platform: group[0],
                            host: Platform::host(),
                        });
                    }
                }
                let unavailable = match (&refusal, &foreign) {
                    (Some(refused), _) => Some(Unavailable::from_error(refused)),
                    (None, Some(foreign)) => Some(foreign.clone()),
                    (None, None) => backend.preflight(&host).err(),
                };
                entries.push(PlanEntry {
                    tier: backend.tier(),
                    platform: group[0],
                    platforms: group,
                    backend: backend.clone(),
                    builder: builder.clone(),
                    unavailable,
                    files: Vec::new(),
                });
            }
        }
        let mut plan = Plan {
            project,
            out_dir,
            cache,
            python,
            python_error,
            installer: survey.installer,
            source_date,
            app,
            entries,
            lock: None,
        };
        // The lock is read only when a tier uses it: those that carry the dependencies, and
        // the wheel, whose smoke test installs its pins. What is wrong with it stops a build;
        // a preview gives it as those tiers' reason.
        let uses_lock = |entry: &PlanEntry| {
            entry.tier == Tier::Wheel || entry.builder.inputs().contains(&Input::Wheelhouse)
        };
        let lock_used = plan.buildable().any(uses_lock);
        if let (true, Some(python)) = (lock_used, plan.python.clone()) {
            match crate::project_lock::plan_lock(&plan.project, &python, &options.lock) {
                Ok(lock) => plan.lock = lock,
                Err(error) if building => return Err(error),
                Err(error) => {
                    let unavailable = Unavailable::from_error(&error);
                    for entry in &mut plan.entries {
                        if entry.unavailable.is_none() && uses_lock(entry) {
                            entry.unavailable = Some(unavailable.clone());
                        }
                    }
                }
            }
        }
        // A build names the files once its distributions say what the app is
        // (`Plan::settle`); naming them from `pyproject.toml` first would be work thrown away.
        if !building {
            plan.name_files();
        }
        Ok(plan)
    }

    /// The build interpreter of a build plan.
    pub fn python(&self) -> &Arc<InterpreterFacts> {
        self.python
            .as_ref()
            .expect("a build plan has its interpreter")
    }

    /// The entries this host builds.
    pub fn buildable(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries.iter().filter(|e| e.unavailable.is_none())
    }

    /// The shared inputs the buildable tiers stand on.
    pub fn needed_inputs(&self) -> BTreeSet<Input> {
        self.buildable()
            .flat_map(|e| e.builder.inputs().iter().copied())
            .collect()
    }

    /// The platforms other than the host's that a buildable tier builds its own files for.
    pub fn foreign_platforms(&self) -> BTreeSet<Platform> {
        self.buildable()
            .filter(|e| e.builder.platform_scope() != PlatformScope::Any)
            .flat_map(|e| e.platforms.iter().copied())
            .filter(|p| !p.is_host())
            .collect()
    }

    /// Every platform other than the host's that a buildable entry serves, its files built
    /// for it or serving any.
    pub fn foreign_platforms_any(&self) -> impl Iterator<Item = Platform> + '_ {
        self.buildable()
            .flat_map(|e| e.platforms.iter().copied())
            .filter(|p| !p.is_host())
    }

    /// The shared inputs the buildable tiers stand on for `platform`.
    pub fn needed_inputs_for(&self, platform: Platform) -> BTreeSet<Input> {
        self.buildable()
            .filter(|e| e.platforms.contains(&platform))
            .flat_map(|e| e.builder.inputs().iter().copied())
            .collect()
    }

    /// The name of the lock file a build publishes when a tier carries the dependencies.
    pub fn lock_file(&self) -> String {
        format!("{}.lock.txt", self.app.stem())
    }

    /// The name of the PEP 751 lock a build publishes beside it: `pylock.NAME.toml` (the
    /// standard's file names leave no room for the version's dots).
    pub fn pylock_file(&self) -> String {
        format!(
            "pylock.{}.toml",
            gradient_core::normalize_name(&self.app.name)
        )
    }

    /// What the built distributions say about the app (its name and version as built, the
    /// files' own names): the files are named again from it.
    pub fn settle(&mut self, app: AppIdentity) {
        self.app = app;
        self.name_files();
    }

    fn name_files(&mut self) {
        for entry in &mut self.entries {
            entry.files = match &self.python {
                Some(python) => {
                    entry
                        .builder
                        .artifact_files(&self.project, python, &self.app, &entry.platforms)
                }
                None => Vec::new(),
            };
        }
    }
}

/// Why `tier` cannot be built here for `platforms`, when one of them is foreign: the tier is
/// built for the host only, or this machine cannot run the platform's programs (the
/// target's interpreter byte-compiles its own standard library, under emulation). `None`
/// when every platform is the host's, and for a tier whose one file serves any platform.
fn foreign_reason(tier: Tier, scope: PlatformScope, platforms: &[Platform]) -> Option<Unavailable> {
    let foreign = *platforms.iter().find(|p| !p.is_host())?;
    match scope {
        PlatformScope::Any => None,
        PlatformScope::HostOnly => Some(Unavailable::from_error(&DriverError::Platform {
            tier,
            platform: foreign,
            host: Platform::host(),
        })),
        PlatformScope::Each | PlatformScope::Together => {
            foreign.runnable_here().err().map(|reason| Unavailable {
                reason: format!("building for {foreign} runs its interpreter here: {reason}"),
                hint: Some(format!(
                    "install qemu-user-static and binfmt-support, then `update-binfmts --enable qemu-{}`",
                    foreign.machine()
                )),
            })
        }
    }
}

/// What the host offers a build: the interpreter, the installer, a container engine (when
/// asked for).
pub struct HostSurvey {
    pub interpreter: Result<Arc<InterpreterFacts>, gradient_python::PythonError>,
    pub installer: Installer,
    pub container_engine: Option<Result<String, Unavailable>>,
}

/// Look at the host: the interpreter `python` names (a version or a path; else `python3`),
/// the installer, and, when `probe_engine`, the container engine.
pub async fn survey_host(python: Option<&str>, cache: &Path, probe_engine: bool) -> HostSurvey {
    let request = python
        .map(PythonRequest::parse)
        .unwrap_or(PythonRequest::Default);
    let interpreter = find_interpreter(&request, cache).await.map(Arc::new);
    let container_engine = match probe_engine {
        true => Some(gradient_oci::Engine::probe().await),
        false => None,
    };
    HostSurvey {
        interpreter,
        installer: Installer::detect(),
        container_engine,
    }
}

/// Without `--tag`, an image is tagged `NAME:VERSION`: when the project declares both, a
/// reference that cannot be made from them (a version longer than a tag may be) is a usage
/// error before any build work, not the engine's refusal after it. A version the backend
/// computes is checked by the image tiers.
fn check_default_tags(project: &Project, options: &BuildOptions) -> Result<(), DriverError> {
    let images = options
        .tiers
        .iter()
        .any(|t| matches!(t, Tier::Oci | Tier::Docker));
    if let (true, true, Some(name), Some(version)) = (
        images,
        options.tags.is_empty(),
        &project.name,
        &project.version,
    ) {
        gradient_oci::default_tags(&gradient_core::normalize_name(name), version)?;
    }
    Ok(())
}

/// Refuse an interpreter that the project's `requires-python` excludes.
fn check_requires_python(project: &Project, python: &InterpreterFacts) -> Result<(), DriverError> {
    let Some(spec) = &project.requires_python else {
        return Ok(());
    };
    if python_satisfies(spec, python.version) != Some(false) {
        return Ok(());
    }
    let suggestion = (8..=14)
        .map(|minor| (3, minor, 0))
        .find(|v| python_satisfies(spec, *v) == Some(true))
        .map(|(major, minor, _)| format!("{major}.{minor}"))
        .unwrap_or_else(|| "X.Y".into());
    Err(DriverError::PythonExcluded {
        project: project.display_name(),
        spec: spec.clone(),
        pyproject: project
            .pyproject
            .clone()
            .unwrap_or_else(|| project.root.join("pyproject.toml")),
        found: python.to_string(),
        suggestion,
    })
}

/// One tier of `gradient plan`'s answer.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedTier {
    pub tier: Tier,
    /// The platforms the tier's files serve (see [`PlanEntry::platforms`]).
    pub platforms: Vec<Platform>,
    /// `None` when this host can build it; else why not (`reason`, `hint`).
    pub unavailable: Option<Unavailable>,
    pub inputs: Vec<Input>,
    /// Those of `inputs` the cache already holds for this project and interpreter: a build
    /// reuses them. The wheelhouse counts as cached when the dependencies of the output
    /// folder's lock file are installed (a changed requirement makes a new lock).
    pub cached_inputs: Vec<Input>,
    /// The files the tier writes into the output folder (its artifacts), named before
    /// building; `settled: false` marks a name only the build decides for certain.
    pub artifacts: Vec<PlannedFile>,
    /// Every file a build of this tier puts into the output folder: its artifacts, their
    /// SBOMs, and the lock file of the dependencies it carries. Every build also writes
    /// [`RUN_FILES`].
    pub files: Vec<String>,
    /// The file the output folder's last build of this tier wrote, when the tier cache still
    /// holds it (a rebuild with unchanged inputs reuses it).
    pub last_build_cached: Option<String>,
    /// For a tier that carries the dependencies, and the wheel (whose smoke test installs
    /// them): where their versions come from.
    pub lock: Option<LockStatus>,
}

/// Where a build takes the dependencies' versions from, as `gradient plan` says it.
#[derive(Clone, Debug, Serialize)]
pub struct LockStatus {
    /// The project's lock file (relative to the project folder when inside it); `None` when
    /// the dependencies are resolved afresh.
    pub file: Option<String>,
    /// `PEP 751 lock`, `uv lock`, `hashed requirements`.
    pub format: Option<String>,
    /// Whether the lock is current with pyproject.toml (`None` without a lock, or when the
    /// project's dependencies are dynamic and cannot be compared before building).
    pub current: Option<bool>,
    /// How it differs from pyproject.toml.
    pub differences: Vec<String>,
    /// Other locks in the project that pin other versions.
    pub disagreements: Vec<String>,
    /// How many packages it installs on this platform.
    pub packages: Option<usize>,
}

impl LockStatus {
    fn of(plan: &Plan) -> LockStatus {
        match &plan.lock {
            Some(lock) => LockStatus {
                file: Some(
                    lock.file
                        .path
                        .strip_prefix(&plan.project.root)
                        .unwrap_or(&lock.file.path)
                        .display()
                        .to_string(),
                ),
                format: Some(lock.file.format.to_string()),
                current: lock.judged.then(|| lock.is_current()),
                differences: lock.differences.clone(),
                disagreements: lock.disagreements.clone(),
                packages: Some(lock.packages.len()),
            },
            None => LockStatus {
                file: None,
                format: None,
                current: None,
                differences: Vec::new(),
                disagreements: Vec::new(),
                packages: None,
            },
        }
    }

    /// One line: `from uv.lock (uv lock, 3 packages), current`.
    pub fn summary(&self) -> String {
        match (&self.file, &self.format) {
            (Some(file), Some(format)) => format!(
                "from {file} ({format}, {} here), {}",
                crate::plural(self.packages.unwrap_or_default(), "package"),
                match self.current {
                    Some(true) => "current with pyproject.toml",
                    Some(false) => "OUT OF DATE with pyproject.toml",
                    None => "not compared with pyproject.toml (its dependencies are dynamic)",
                }
            ),
            _ => "resolved afresh from the wheel's requirements (no lock used: none found, or --no-lock)".to_string(),
        }
    }
}

/// The files every build that makes an artifact writes into its output folder, besides
/// the tiers' own.
pub const RUN_FILES: [&str; 5] = [
    MANIFEST_FILE,
    crate::manifest::SUMS_FILE,
    crate::comparison::REPORT_FILES[0],
    crate::comparison::REPORT_FILES[1],
    crate::comparison::REPORT_FILES[2],
];

/// `gradient plan`: the plan for `tiers` on `platforms` (empty: the project's, else the
/// host's) of the project in `project_dir`, whose output folder is `out_dir`, with what the
/// cache already holds.
pub async fn plan(
    project_dir: &Path,
    out_dir: Option<&Path>,
    python: Option<&str>,
    tiers: &[Tier],
    platforms: &[Platform],
    lock: &crate::project_lock::LockOptions,
) -> Result<Vec<PlannedTier>, DriverError> {
    let options = BuildOptions {
        project_dir: project_dir.to_path_buf(),
        out_dir: out_dir.map(Path::to_path_buf),
        python: python.map(str::to_string),
        tiers: tiers.to_vec(),
        platforms: platforms.to_vec(),
        lock: lock.clone(),
        ..BuildOptions::default()
    };
    let mut plan = Plan::resolve(&options, Purpose::Preview, &crate::Silent).await?;
    let last: Option<Manifest> = std::fs::read(plan.out_dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let (cached_inputs, built) = cached_inputs(&plan, last.as_ref()).await;
    if let Some(built) = built {
        plan.settle(built);
    }
    let lock_file = plan.lock_file();
    let mut planned = Vec::new();
    for entry in &plan.entries {
        let inputs = entry.builder.inputs();
        // What the cache and the last build hold are the host platform's.
        let host = entry.platforms.iter().all(|p| p.is_host());
        let last_build_cached = last.as_ref().filter(|_| host).and_then(|manifest| {
            let record = manifest
                .artifacts
                .iter()
                .find(|a| a.tier == entry.tier && a.platform.is_none_or(|p| p.is_host()))?;
            crate::tier_cache::holds(&plan.cache, entry.tier, &record.file, &record.sha256)
                .then(|| record.file.clone())
        });
        let mut files: Vec<String> = entry
            .files
            .iter()
            .flat_map(|f| {
                let mut names = vec![f.name.clone(), crate::sbom::sbom_file_name(&f.name)];
                names.extend(entry.backend.beside_names(&f.name));
                names
            })
            .collect();
        if inputs.contains(&Input::Wheelhouse) {
            files.push(lock_file.clone());
            files.push(plan.pylock_file());
        }
        planned.push(PlannedTier {
            tier: entry.tier,
            platforms: entry.platforms.clone(),
            unavailable: entry.unavailable.clone(),
            inputs: inputs.to_vec(),
            cached_inputs: inputs
                .iter()
                .filter(|i| host && cached_inputs.contains(i))
                .copied()
                .collect(),
            artifacts: entry.files.clone(),
            files,
            last_build_cached,
            lock: (entry.tier == Tier::Wheel || inputs.contains(&Input::Wheelhouse))
                .then(|| LockStatus::of(&plan)),
        });
    }
    Ok(planned)
}

/// Which of the plan's shared inputs the cache holds, as the build would look them up, and
/// the cached distributions' account of the app (their names settle the plan's); nothing
/// when no interpreter is found.
async fn cached_inputs(plan: &Plan, last: Option<&Manifest>) -> (Vec<Input>, Option<AppIdentity>) {
    let Some(python) = &plan.python else {
        return (Vec::new(), None);
    };
    let needed = plan.needed_inputs();
    let project = &plan.project;
    let mut cached = Vec::new();
    let mut built = None;
    let want_sdist = needed.contains(&Input::Sdist);
    let want_wheel = needed.contains(&Input::Wheel) || needed.contains(&Input::Wheelhouse);
    if want_sdist || want_wheel {
        let work = std::env::temp_dir();
        let request = gradient_wheel::BuildRequest {
            project,
            python,
            installer: &plan.installer,
            cache_root: &plan.cache,
            work_dir: &work,
            source_date: plan.source_date,
            route: gradient_wheel::WheelRoute::ViaSdist,
            want_sdist,
            want_wheel,
            use_cache: true,
            out_dir: Some(&plan.out_dir),
            hook_timeout: None,
        };
        if let Some(dists) = gradient_wheel::cached_distributions(&request).await {
            cached.extend([Input::Sdist, Input::Wheel]);
            built = Some(dists);
        }
    }
    if needed.contains(&Input::Wheelhouse) {
        let stem = match last {
            Some(manifest) => format!(
                "{}-{}",
                gradient_core::normalize_name(&manifest.project.name),
                manifest.project.version
            ),
            None => plan.app.stem(),
        };
        let lock = plan.out_dir.join(format!("{stem}.lock.txt"));
        // The published lock says which project lock it came from (by digest).
        let from_same_lock = |text: &str| {
            plan.lock.as_ref().is_none_or(|l| {
                text.lines()
                    .next()
                    .is_some_and(|first| first.contains(&l.sha256))
            })
        };
        if std::fs::read_to_string(lock).is_ok_and(|lock| {
            from_same_lock(&lock)
                && gradient_python::wheelhouse::site_cached(&lock, python, &plan.cache)
        }) {
            cached.push(Input::Wheelhouse);
        }
    }
    if needed.contains(&Input::Runtime) && project.config.runtime.host_source().is_none() {
        let stdlib = gradient_python::runtime::StdlibChoice::of(&project.config.runtime);
        if gradient_python::runtime::runtime_cached(python, &stdlib, &plan.cache) {
            cached.push(Input::Runtime);
        }
    }
    (cached, built)
}

/// `linux/amd64,linux/arm64`: platforms as `--platform` takes them.
pub fn platform_list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.oci())
        .collect::<Vec<_>>()
        .join(",")
}

/// A GitHub Actions matrix (`strategy.matrix: ${{ fromJSON(...) }}`): one job per tier
/// this host can build.
pub fn github_matrix(plan: &[PlannedTier]) -> serde_json::Value {
    let include: Vec<serde_json::Value> = plan
        .iter()
        .filter(|p| p.unavailable.is_none())
        .map(|p| serde_json::json!({ "tier": p.tier, "platform": platform_list(&p.platforms) }))
        .collect();
    serde_json::json!({ "include": include })
}
