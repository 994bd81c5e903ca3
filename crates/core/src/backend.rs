//! The one trait every tier implements, and what flows in and out of it.
//!
//! The driver builds the shared inputs a plan needs ([`Inputs`]) once, hands each backend a
//! [`BuildContext`], publishes the [`Artifact`]s it returns into the output folder, then asks
//! the same backend to smoke-test them as its target would run them.

use crate::{
    AppWheel, InterpreterFacts, MissingInput, Platform, Project, SourceDate, TargetNeeds, Tier,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors cross the trait boxed with their hint: each backend crate keeps its own
/// `thiserror` enum, which implements [`Hint`](crate::Hint).
pub type BackendError = crate::TierError;

/// An intermediate product that several tiers share, built once per run by the driver.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Input {
    /// The normalised, validated sdist built from the source tree.
    Sdist,
    /// The normalised, validated wheel built from the unpacked sdist.
    Wheel,
    /// The runtime dependencies, locked with hashes and installed once.
    Wheelhouse,
    /// The build interpreter's CPython, made relocatable with its library closure.
    Runtime,
}

impl Input {
    pub fn name(self) -> &'static str {
        match self {
            Input::Sdist => "sdist",
            Input::Wheel => "wheel",
            Input::Wheelhouse => "wheelhouse",
            Input::Runtime => "runtime",
        }
    }
}

/// The app as a plan knows it: its name and version (from `pyproject.toml`, or from the
/// built distributions once they exist), and the distributions' own file names when they
/// are built or cached. Every tier names its files from this.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppIdentity {
    /// The name as declared (`Sample-App`); tiers normalise it in their formats' rules.
    pub name: String,
    /// `None` while the build backend decides it (a dynamic version) and nothing is built.
    pub version: Option<String>,
    /// The sdist's file name, once built or found in the cache.
    pub sdist_file: Option<String>,
    /// The wheel's file name, once built or found in the cache.
    pub wheel_file: Option<String>,
}

impl AppIdentity {
    /// The version for a file name: `VERSION` while the build backend has not said it.
    pub fn version_in_name(&self) -> &str {
        self.version.as_deref().unwrap_or("VERSION")
    }

    /// `NAME-VERSION` with the name normalised (`sample-app-1.0`), the stem of the files
    /// gradient itself writes.
    pub fn stem(&self) -> String {
        format!(
            "{}-{}",
            crate::normalize_name(&self.name),
            self.version_in_name()
        )
    }

    /// Whether the version is known and in the form the build backend writes it (`1.0rc1`;
    /// `1.0-RC1` in `pyproject.toml` becomes `1.0rc1` in the built files).
    pub fn version_settled(&self) -> bool {
        self.version
            .as_deref()
            .is_some_and(crate::specifier::is_normalised_version)
    }

    /// A file named from the name and version only: settled once the version is.
    pub fn planned(&self, name: String) -> PlannedFile {
        PlannedFile {
            name,
            settled: self.version_settled(),
        }
    }
}

/// A file a tier writes into the output folder, as the plan names it before building.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    pub name: String,
    /// `false` when the name is the plan's best prediction of something only the build
    /// decides (a wheel's tags before the wheel is built, a dynamic version, whether a
    /// package carries compiled code); the build then names it and says so when it differs.
    pub settled: bool,
}

/// The shared inputs built so far in this run: a typed registry that later steps read.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub sdist: Option<PathBuf>,
    /// The app's wheel, read once: its file, metadata and scripts.
    pub app: Option<AppWheel>,
    /// Whether the wheel built from the unpacked sdist is byte-identical to one built
    /// straight from the source tree (`Err` says what differs); `None` when not compared.
    /// A difference means the sdist is missing something the source tree has.
    pub sdist_matches_source: Option<Result<Option<String>, String>>,
    /// True when sdist and wheel were reused from the cache of an identical earlier build
    /// (whose checks, like `sdist_matches_source`, are reused with them).
    pub distributions_cached: bool,
    pub wheelhouse: Option<WheelhouseFiles>,
    pub runtime: Option<RuntimeFiles>,
    /// When the project's lock decides the dependencies: its pins for this platform, as
    /// hashed requirements. The wheel's smoke test installs them first, as a target that
    /// deploys the wheel with its lock does.
    pub pinned: Option<PathBuf>,
    /// `None` for the host's platform. For another platform, the system its artifacts are
    /// made from: `wheelhouse` and `runtime` above are then that platform's (the sdist and
    /// the app's wheel are the host's, shared when pure).
    pub target: Option<TargetSystem>,
}

/// The system a foreign platform's artifacts are assembled from and smoke-tested with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSystem {
    pub platform: Platform,
    /// A root of the target's distribution holding its CPython and the libraries that links
    /// (Debian's, for linux/arm64): where the target's ELF dependencies are looked up.
    /// Read-only: it is shared.
    pub root: PathBuf,
    /// A root holding only the target's C library and dynamic loader: what qemu-user is
    /// given as `QEMU_LD_PREFIX` when a smoke test runs an artifact of this platform, so
    /// that the artifact finds nothing but its own files and the libc its target provides.
    pub loader_prefix: PathBuf,
    /// The target's glibc version (`2.36`): the oldest its wheels and bundle may need.
    pub glibc: String,
    /// The full version of the target's CPython (`3.11.2`), which its runtime bundle carries.
    pub python_version: String,
}

impl Inputs {
    /// The platform these inputs are for (`None` only on a host gradient has no name for).
    pub fn platform(&self) -> Option<Platform> {
        match &self.target {
            Some(target) => Some(target.platform),
            None => Platform::host(),
        }
    }

    /// The app's wheel, read: what a tier that builds from it needs.
    pub fn app(&self) -> Result<&AppWheel, MissingInput> {
        self.app.as_ref().ok_or(MissingInput { what: "wheel" })
    }

    /// The app's wheel file, if it was built.
    pub fn wheel(&self) -> Option<&Path> {
        self.app.as_ref().map(|app| app.path.as_path())
    }

    /// The wheelhouse: what a tier that ships the dependencies needs.
    pub fn wheelhouse(&self) -> Result<&WheelhouseFiles, MissingInput> {
        self.wheelhouse
            .as_ref()
            .ok_or(MissingInput { what: "wheelhouse" })
    }

    /// The runtime bundle: what a tier that ships CPython needs.
    pub fn runtime(&self) -> Result<&RuntimeFiles, MissingInput> {
        self.runtime
            .as_ref()
            .ok_or(MissingInput { what: "runtime" })
    }
}

/// The runtime bundle as the tiers see it.
#[derive(Clone, Debug)]
pub struct RuntimeFiles {
    /// The bundle's root (`bin/`, `lib/`). Read-only: it is shared.
    pub dir: PathBuf,
    /// The interpreter and site-packages, relative to `dir`.
    pub python: String,
    pub site_packages: String,
    /// The oldest glibc that runs it.
    pub glibc: Option<String>,
    /// What the bundle was made from (a digest of its marker, which names the host
    /// libraries it copied and their sizes and times): the same folder made again from a
    /// changed host library gets another one.
    pub id: String,
}

impl RuntimeFiles {
    /// The bundle's cache key: its cache folder's name (`runtimes/KEY/bundle`, from the
    /// interpreter) and [`RuntimeFiles::id`]. It names the things made from it once and kept
    /// in the cache, so none outlives the bundle it was made from.
    pub fn key(&self) -> String {
        let folder = self
            .dir
            .parent()
            .and_then(Path::file_name)
            .map_or_else(|| "runtime".into(), |n| n.to_string_lossy().into_owned());
        match self.id.get(..12) {
            Some(id) => format!("{folder}-{id}"),
            None => folder,
        }
    }
}

/// The wheelhouse as the tiers see it.
#[derive(Clone, Debug)]
pub struct WheelhouseFiles {
    /// The installed dependencies (without the app), byte-compiled. Read-only: it is shared.
    pub site: PathBuf,
    /// The lock file (pip requirements with hashes).
    pub lock: PathBuf,
    /// Every dependency carried, at its locked version.
    pub packages: Vec<LockedDependency>,
}

/// One dependency as the wheelhouse carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedDependency {
    /// Normalised name.
    pub name: String,
    pub version: String,
    /// The SHA-256 of the file it was installed from; several when the lock cannot tell
    /// which of its files the installer took.
    pub sha256: Vec<String>,
}

/// What a backend's preflight may look at.
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// The build interpreter, when one was found.
    pub interpreter: Option<Arc<InterpreterFacts>>,
    /// The container engine: its version, or why none answers; `None` when not asked.
    pub container_engine: Option<Result<String, Unavailable>>,
}

impl Host {
    /// Every tier builds with the build interpreter: unavailable without one.
    pub fn require_interpreter(&self) -> Result<(), Unavailable> {
        match self.interpreter {
            Some(_) => Ok(()),
            None => Err(Unavailable {
                reason: "no build interpreter was found".into(),
                hint: Some("install Python 3.8 or newer, or pass --python".into()),
            }),
        }
    }
}

/// Why a tier cannot be built on this host: a value, not an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    pub reason: String,
    pub hint: Option<String>,
}

impl Unavailable {
    /// From an error that makes a tier unavailable: its text the reason, its hint the hint.
    pub fn from_error(error: &(impl std::error::Error + crate::Hint + 'static)) -> Unavailable {
        Unavailable {
            reason: crate::error_chain(error),
            hint: error.hint(),
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything a backend needs to build its artifacts.
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub project: Arc<Project>,
    pub python: Arc<InterpreterFacts>,
    pub inputs: Arc<Inputs>,
    /// A scratch folder of this tier's own; artifacts are written here and the driver
    /// publishes them into the output folder atomically.
    pub work_dir: PathBuf,
    pub source_date: SourceDate,
    /// gradient's cache folder, for what a tier keeps between runs (image layers).
    pub cache_dir: PathBuf,
    /// `--tag`: the image references the user asked for; empty means the tier's default.
    pub image_tags: Vec<String>,
    /// For a tier of [`PlatformScope::Together`], the inputs of every platform the build
    /// is for, `inputs` first; for every other tier, `inputs` alone.
    pub targets: Vec<Arc<Inputs>>,
}

/// How a tier's artifacts relate to the platforms a run builds for, and so how the plan
/// lays the tier out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformScope {
    /// The host's platform only: this version builds the tier for no other.
    HostOnly,
    /// The same artifact serves every platform (an sdist, the app's wheel): built once.
    Any,
    /// One build per platform, each from that platform's inputs (`BuildContext::inputs`).
    Each,
    /// One build for every platform at once (`BuildContext::targets`): an image index
    /// holding one image per platform, a zipapp shared when it carries no compiled code.
    Together,
}

/// Everything a backend needs to smoke-test an artifact.
#[derive(Clone, Debug)]
pub struct SmokeContext {
    pub project: Arc<Project>,
    pub python: Arc<InterpreterFacts>,
    pub inputs: Arc<Inputs>,
    /// A fresh, empty folder for this smoke test: HOME, caches and environments go here.
    pub scratch: PathBuf,
    /// Install dependencies only from this folder of wheels, never from an index.
    pub find_links: Option<PathBuf>,
    /// As in [`BuildContext::image_tags`].
    pub image_tags: Vec<String>,
    /// What the app does in a plain venv, when the driver could find out: each console
    /// script's `--help` must end as it ends there.
    pub reference: Option<Arc<crate::reference::Reference>>,
}

/// What a probe (Python code run as the artifact's app runs) printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutput {
    /// How it was run, as a user could type it.
    pub command: String,
    /// Its standard output, when it exited 0; else what went wrong, with its output's tail.
    pub stdout: Result<String, String>,
}

/// One file a backend produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub tier: Tier,
    /// Where the file is: the backend's work folder, then the output folder once published.
    pub path: PathBuf,
    /// What the target must provide to run it.
    pub needs: TargetNeeds,
    /// The platform the file runs on, when it is bound to one (`None`: any, like a pure
    /// wheel, or the several an image index holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Artifact {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// One command a smoke test ran, and what came of it.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmokeCheck {
    /// What was checked, as a user could type it (`sampleapp greet X`).
    pub command: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// On failure: what was expected and the output's tail. On success: a short note.
    pub detail: String,
}

/// The result of smoke-testing one artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SmokeReport {
    pub checks: Vec<SmokeCheck>,
}

impl SmokeReport {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

/// How long an artifact takes to run its first smoke command (the project's own, or
/// `--help`) as its target runs it: once with the artifact's own caches empty (nothing
/// extracted, nothing compiled yet) and once more at once (warm).
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Startup {
    /// The command measured, as a user could type it.
    pub command: String,
    pub first_run_seconds: f64,
    pub warm_seconds: f64,
}

/// A tier. One implementation per tier crate; the driver holds them in gradient order.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The tier this backend builds.
    fn tier(&self) -> Tier;

    /// Which platforms the tier builds for, and how (see [`PlatformScope`]).
    fn platform_scope(&self) -> PlatformScope {
        PlatformScope::HostOnly
    }

    /// What the target machine must provide, refined with the project's facts.
    fn target_needs(&self, project: &Project, python: &InterpreterFacts) -> TargetNeeds;

    /// The shared inputs the driver must build before calling [`Backend::build`].
    fn inputs(&self) -> &'static [Input];

    /// The tier whose build makes this tier's files, when this tier only delivers them
    /// (docker loads the oci tier's image into an engine); `None` for a tier that builds.
    /// The driver then never calls this tier's [`Backend::build`].
    fn delivers(&self) -> Option<Tier> {
        None
    }

    /// The files [`Backend::build`] writes for `app` on `platforms` (the one it builds for,
    /// or every one for a tier of [`PlatformScope::Together`] or [`PlatformScope::Any`]), in
    /// its order, named as the build names them (both call one function). The plan lists
    /// them before anything is built.
    fn artifact_files(
        &self,
        project: &Project,
        python: &InterpreterFacts,
        app: &AppIdentity,
        platforms: &[Platform],
    ) -> Vec<PlannedFile>;

    /// Whether this host can build the tier, and if not, why.
    fn preflight(&self, host: &Host) -> Result<(), Unavailable>;

    /// What this tier's output depends on beyond the project, the interpreter, the source
    /// date and its declared inputs (host tools, files a setting names), so that the driver
    /// can reuse an earlier build with the same fingerprint. `None`: never reuse (the output
    /// depends on something outside gradient's view, like an image in the engine).
    fn fingerprint(&self, _project: &Project) -> Option<String> {
        Some(String::new())
    }

    /// Files the driver writes beside a published artifact of this tier, by name, made from
    /// the artifact itself (so also for one taken from the cache): the rpm's rpmlintrc,
    /// which rpmlint reads from the folder of the package it checks. They are not artifacts:
    /// the manifest does not list them.
    fn beside(&self, _artifact: &Path) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }

    /// The names of the files [`Backend::beside`] writes for the artifact named `file`,
    /// for the plan to list before anything is built.
    fn beside_names(&self, _file: &str) -> Vec<String> {
        Vec::new()
    }

    /// Whether this host has what the smoke test needs to check an artifact (a package
    /// manager such as `rpm`). A checker that is missing is not a failed artifact: the
    /// driver publishes it unchecked and says what to install, unless the run insists
    /// (`GRADIENT_REQUIRE_CHECKERS=1`, as CI sets), in which case the smoke test runs and
    /// fails on the missing tool.
    fn smoke_needs(&self) -> Result<(), Unavailable> {
        Ok(())
    }

    /// Whether this project can be built into the tier, now that the shared inputs exist
    /// (the wheel's metadata is known): checked before [`Backend::build`], and a refusal is a
    /// skip with its reason, like [`Backend::preflight`]'s.
    fn check(&self, _cx: &BuildContext) -> Result<(), Unavailable> {
        Ok(())
    }

    /// Work that needs only the runtime bundle (a compressed layer, a packed part of the
    /// artifact), run as soon as the bundle is ready, while the wheel and the wheelhouse are
    /// still being made. What it makes goes into `cache`, where [`Backend::build`] finds
    /// it. Says what it made, or `None` when it was cached already; a failure is left for
    /// `build` to meet and report.
    async fn prepare(
        &self,
        _project: &Project,
        _runtime: &RuntimeFiles,
        _cache: &Path,
    ) -> Option<String> {
        None
    }

    /// Write the tier's artifacts into `cx.work_dir`.
    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError>;

    /// The runtime bundle as this tier's artifacts carry it, for their bill of materials,
    /// and whether its shared libraries are the bundle's (`false`: the tier collects its own,
    /// and only CPython is listed). `None`: the artifact carries no runtime of gradient's
    /// (the target provides Python).
    async fn shipped_runtime(
        &self,
        _project: &Project,
        _runtime: &RuntimeFiles,
        _cache: &Path,
    ) -> Option<(RuntimeFiles, bool)> {
        None
    }

    /// Hand a published artifact to what its target takes it from (the docker tier loads
    /// its image into the engine) and say what was done. Runs after the artifact is in the
    /// output folder and before its smoke test: a failure fails the tier and leaves the
    /// file where it is. Most tiers have nothing to do here.
    async fn deliver(
        &self,
        _artifact: &Artifact,
        _cx: &BuildContext,
    ) -> Result<Option<String>, BackendError> {
        Ok(None)
    }

    /// Run the artifact the way its target would, and check what it does.
    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError>;

    /// Run the Python program `code` with the interpreter the artifact's app runs on, seeing
    /// the packages the app sees, as its target runs it (after [`Backend::smoke`], whose
    /// scratch folder it may reuse). The driver compares what it prints with the same
    /// program's output in a plain venv. `None`: this tier's artifacts carry no Python that
    /// can be run so.
    async fn probe(
        &self,
        _artifact: &Artifact,
        _cx: &SmokeContext,
        _code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        Ok(None)
    }

    /// Measure the artifact's start-up (see [`Startup`]). The driver calls it after every
    /// tier's smoke test has passed, one tier at a time so that nothing else runs, with the
    /// smoke test's own scratch folder: what the smoke test set up (an environment, an
    /// unpacked root) is there to reuse. `None`: this tier's artifacts are not run.
    async fn startup(
        &self,
        _artifact: &Artifact,
        _cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        Ok(None)
    }
}
