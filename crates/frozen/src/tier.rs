//! The frozen tier: build the executable, and smoke-test it where no Python exists.

use crate::assemble;
use crate::pyinstaller::build_with_pyinstaller;
use async_trait::async_trait;
use gradient_core::{
    AppIdentity, AppScripts, Artifact, Backend, BackendError, BuildContext, FrozenEngine, Host,
    Input, InterpreterFacts, PlannedFile, ProbeOutput, Project, RuntimeFiles, SmokeCheck,
    SmokeContext, SmokeReport, Startup, TargetNeeds, Tier, Unavailable,
};
use gradient_launcher::Launch;
use gradient_python::smoke::{
    concurrent_first_runs, concurrent_runs, measure_startup, run_check, run_probe, smoke_commands,
    startup_command, Expect, SmokeCommand,
};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Single-file executables with their own CPython. Smoke test: in a mount namespace where
/// every Python installation of the host is hidden (empty tmpfs over their folders,
/// /dev/null over their executables) and PATH has no Python, with an empty HOME: first the
/// hiding itself is checked, then a first run, a warm run, and two concurrent first runs on
/// an empty cache, which must leave one extraction.
pub struct FrozenTier {
    /// For the PyInstaller engine's own environment.
    pub installer: gradient_python::Installer,
}

#[async_trait]
impl Backend for FrozenTier {
    fn tier(&self) -> Tier {
        Tier::Frozen
    }

    /// One executable per platform, each with that platform's launcher and runtime.
    fn platform_scope(&self) -> gradient_core::PlatformScope {
        gradient_core::PlatformScope::Each
    }

    fn target_needs(&self, _project: &Project, python: &InterpreterFacts) -> TargetNeeds {
        TargetNeeds {
            platform: Some(python.platform_tag.clone()),
            // Known once the runtime is bundled: the highest GLIBC_x.y it references.
            glibc: Some("the bundle's minimum".into()),
            carries: gradient_core::Carries::DEPENDENCIES_AND_CPYTHON,
            ..TargetNeeds::default()
        }
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Runtime, Input::Wheelhouse, Input::Wheel]
    }

    fn artifact_files(
        &self,
        _project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        let name = gradient_core::normalize_name(&app.name);
        let Some(platform) = platforms
            .first()
            .copied()
            .or_else(gradient_core::Platform::host)
        else {
            return Vec::new();
        };
        vec![app.planned(crate::assemble::file_name(
            &name,
            app.version_in_name(),
            platform,
        ))]
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()?;
        let python = host.interpreter.as_ref().expect("checked above");
        if python.platform_tag != "linux_x86_64" {
            return Err(Unavailable {
                reason: format!(
                    "frozen executables are built for linux_x86_64 only, and this interpreter is for {}",
                    python.platform_tag
                ),
                hint: None,
            });
        }
        gradient_python::runtime::require_bundleable(python)
    }

    /// The runtime's packed part (with gradient's engine), made while the wheel builds.
    async fn prepare(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        cache: &Path,
    ) -> Option<String> {
        if project.config.frozen.engine != FrozenEngine::Gradient
            || crate::assemble::runtime_part_cached(runtime, cache)
        {
            return None;
        }
        let (runtime, cache) = (runtime.clone(), cache.to_path_buf());
        let part =
            tokio::task::spawn_blocking(move || crate::assemble::runtime_part(&runtime, &cache))
                .await
                .ok()?
                .ok()?;
        let size = std::fs::metadata(part).ok()?.len();
        Some(format!(
            "packed the runtime ({:.1} MiB)",
            size as f64 / (1 << 20) as f64
        ))
    }

    /// gradient's engine carries the bundle as it is; PyInstaller collects its own shared
    /// libraries beside CPython.
    async fn shipped_runtime(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        _cache: &Path,
    ) -> Option<(RuntimeFiles, bool)> {
        let own_libraries = project.config.frozen.engine == FrozenEngine::Gradient;
        Some((runtime.clone(), own_libraries))
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let app = cx.inputs.app()?;
        let wheelhouse = cx.inputs.wheelhouse()?;
        let runtime = cx.inputs.runtime()?;
        let foreign = cx.inputs.target.as_ref().map(|t| t.platform);
        let path = match cx.project.config.frozen.engine {
            FrozenEngine::Gradient => assemble(cx, app, &wheelhouse.site, runtime).await?.path,
            FrozenEngine::Pyinstaller if foreign.is_some() => {
                return Err(crate::FrozenError::PyInstallerForeign {
                    platform: foreign.expect("checked"),
                }
                .into())
            }
            FrozenEngine::Pyinstaller => {
                build_with_pyinstaller(
                    &cx.python,
                    &self.installer,
                    app,
                    &wheelhouse.site,
                    &cx.work_dir,
                    cx.source_date,
                    &cx.cache_dir,
                )
                .await?
            }
        };
        let mut needs = self.target_needs(&cx.project, &cx.python);
        if let Some(platform) = foreign {
            needs.platform = Some(format!("linux_{}", platform.machine()));
        }
        needs.glibc = runtime.glibc.clone();
        // What the dependencies' extension modules link from the system: the executable
        // carries its CPython, not the target's libstdc++.so.6.
        // Looked up where the target's libraries are: the host's, or another platform's root.
        let system = match &cx.inputs.target {
            Some(target) => gradient_python::runtime::Sysroot::of_machine(
                &target.root,
                target.platform.machine(),
            ),
            None => None,
        };
        let bundle_lib = runtime.dir.join("lib");
        needs.libraries = match &system {
            Some(system) => gradient_python::runtime::system_libraries_in(
                system,
                &wheelhouse.site,
                Some(&bundle_lib),
            ),
            None => gradient_python::runtime::system_libraries(&wheelhouse.site, Some(&bundle_lib)),
        }
        .into_iter()
        .map(|(soname, _)| soname)
        .collect();
        Ok(vec![Artifact {
            tier: Tier::Frozen,
            path,
            needs,
            platform: cx.inputs.platform(),
        }])
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let AppScripts { scripts, default } = cx.inputs.app()?.scripts()?;
        let hidden = HiddenPython::for_host(&cx.python, cx);
        let links = cx.scratch.join("links");
        std::fs::create_dir_all(&links)?;
        let mut checks = vec![hidden.check(&cx.python, &cx.scratch).await];
        if !checks[0].passed {
            return Ok(SmokeReport { checks });
        }
        let names: Vec<&String> = scripts.keys().collect();
        for (index, SmokeCommand { argv, expect }) in
            smoke_commands(&cx.project, cx.reference.as_deref(), names)
                .into_iter()
                .enumerate()
        {
            let link = links.join(&argv[0]);
            if !link.exists() {
                std::os::unix::fs::symlink(&artifact.path, &link)?;
            }
            let cache = format!("cache-{index}");
            let shown = argv.join(" ");
            let first = hidden.command(&link, &argv[1..], &cx.scratch, &cache);
            checks.push(
                run_check(
                    format!("{shown} (first run, no Python on the host)"),
                    first,
                    &expect,
                )
                .await,
            );
            let warm = hidden.command(&link, &argv[1..], &cx.scratch, &cache);
            checks.push(run_check(format!("{shown} (warm)"), warm, &expect).await);
            // The main command (a multi-call file without a default: the first) also runs
            // twice at once on an empty cache (not a server: two cannot share its port).
            let main = match &default {
                Some(default) => &argv[0] == default,
                None => index == 0,
            };
            if main && expect.http.is_none() {
                let make = || hidden.command(&link, &argv[1..], &cx.scratch, "cache-concurrent");
                checks.push(match cx.project.config.frozen.engine {
                    FrozenEngine::Gradient => {
                        let extractions = cx.scratch.join("cache-concurrent/gradient/frozen");
                        let shown = format!("2 concurrent first runs of {shown}");
                        concurrent_first_runs(shown, make, &expect, &extractions).await
                    }
                    // PyInstaller unpacks into a temporary folder on every run and removes it:
                    // there is no cache to share, only two runs that must both pass.
                    FrozenEngine::Pyinstaller => {
                        concurrent_runs(format!("2 concurrent runs of {shown}"), make, &expect)
                            .await
                    }
                });
            }
        }
        Ok(SmokeReport { checks })
    }

    /// The bundled Python of the extraction the smoke test's first command made, run as the
    /// launcher runs it, with every Python of the host hidden. PyInstaller's executables
    /// carry no Python that can be run so.
    async fn probe(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        if cx.project.config.frozen.engine != FrozenEngine::Gradient {
            return Ok(None);
        }
        let extractions = cx.scratch.join("cache-0/gradient/frozen");
        let extraction = std::fs::read_dir(&extractions)
            .map_err(|e| {
                format!(
                    "the smoke test's first run made no extraction in `{}` ({e})",
                    extractions.display()
                )
            })?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.join("launch.txt").is_file())
            .ok_or_else(|| format!("no extraction in `{}`", extractions.display()))?;
        let launch = Launch::parse(&std::fs::read_to_string(extraction.join("launch.txt"))?)
            .map_err(|e| e.to_string())?;
        let hidden = HiddenPython::for_host(&cx.python, cx);
        let args = [
            "-I".into(),
            "-c".into(),
            Launch::probe_code(code),
            "probe".into(),
        ];
        let command = hidden.command(
            &extraction.join(&launch.python),
            &args,
            &cx.scratch,
            "cache-0",
        );
        let shown = format!(
            "{} -I -c PROBE (the extracted Python, no Python on the host)",
            launch.python
        );
        Ok(Some(run_probe(shown, command).await))
    }

    /// The executable on an empty extraction cache, then warm. Run straight, not in the
    /// smoke test's namespace (which has shown that no host Python is needed), so that the
    /// figure is the executable's own.
    async fn startup(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        let AppScripts { scripts, default } = cx.inputs.app()?.scripts()?;
        let Some(SmokeCommand { argv, expect }) = startup_command(
            &cx.project,
            cx.reference.as_deref(),
            default.iter().chain(scripts.keys()),
        ) else {
            return Ok(None);
        };
        let dir = cx.scratch.join("startup");
        std::fs::create_dir_all(dir.join("home"))?;
        let link = dir.join(&argv[0]);
        if !link.exists() {
            std::os::unix::fs::symlink(&artifact.path, &link)?;
        }
        let make = || {
            let mut command = Command::new(&link);
            command
                .args(&argv[1..])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.join("home"))
                .env("XDG_CACHE_HOME", dir.join("cache"))
                .env("LANG", "C.UTF-8")
                .current_dir(&dir);
            emulate(&mut command, cx);
            command
        };
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

/// An executable for another platform runs under qemu-user (binfmt_misc), with only the
/// target's C library to load from: what a bare machine of that platform provides.
fn emulate(command: &mut Command, cx: &SmokeContext) {
    if let Some(target) = &cx.inputs.target {
        command.env("QEMU_LD_PREFIX", &target.loader_prefix);
    }
}

/// The host's Python installations, and how to hide them.
struct HiddenPython {
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
    /// For another platform's executable: where qemu-user finds its C library.
    loader_prefix: Option<PathBuf>,
}

impl HiddenPython {
    fn for_host(python: &InterpreterFacts, cx: &SmokeContext) -> HiddenPython {
        let mut folders: Vec<PathBuf> = Vec::new();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let pyenv = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or(home.map(|h| h.join(".pyenv")));
        folders.extend(pyenv.filter(|p| p.is_dir()));
        for parent in ["/usr/lib", "/usr/local/lib", "/opt"] {
            for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("python") && entry.path().is_dir() {
                    folders.push(entry.path());
                }
            }
        }
        // A prefix of its own (not /usr or /usr/local) is hidden whole.
        let base = &python.base_prefix;
        if !["/usr", "/usr/local", "/"].contains(&base.to_str().unwrap_or(""))
            && !folders.iter().any(|f| base.starts_with(f))
        {
            folders.push(base.clone());
        }
        let mut files = Vec::new();
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("python") && !files.contains(&entry.path()) {
                    files.push(entry.path());
                }
            }
        }
        HiddenPython {
            folders,
            files,
            loader_prefix: cx.inputs.target.as_ref().map(|t| t.loader_prefix.clone()),
        }
    }

    /// `program args` run in a private mount namespace with every Python hidden.
    fn command(&self, program: &Path, args: &[String], scratch: &Path, cache: &str) -> Command {
        let mut script = String::from("set -e\n");
        for folder in &self.folders {
            script.push_str(&format!(
                "mount -t tmpfs gradient-hidden '{}'\n",
                folder.display()
            ));
        }
        for file in &self.files {
            script.push_str(&format!("mount --bind /dev/null '{}'\n", file.display()));
        }
        script.push_str("exec \"$@\"\n");
        let mut command = Command::new("unshare");
        if !gradient_python::is_root() {
            // Without root, a user namespace grants the right to mount inside it.
            command.args(["--user", "--map-root-user"]);
        }
        command
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "sh",
            ])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", scratch.join("home"))
            .env("XDG_CACHE_HOME", scratch.join(cache))
            .env("LANG", "C.UTF-8")
            .current_dir(scratch);
        if let Some(prefix) = &self.loader_prefix {
            command.env("QEMU_LD_PREFIX", prefix);
        }
        command
    }

    /// The hiding works: no python on PATH, and the build interpreter cannot be run.
    async fn check(&self, python: &InterpreterFacts, scratch: &Path) -> SmokeCheck {
        let probe = format!(
            "! command -v python3 >/dev/null && ! command -v python >/dev/null && ! '{}' -c pass 2>/dev/null",
            python.executable.display()
        );
        let command = self.command(
            Path::new("sh"),
            &["-c".into(), probe],
            scratch,
            "cache-probe",
        );
        let mut check = run_check(
            "hide every Python of the host (unshare --mount)".into(),
            command,
            &Expect::default(),
        )
        .await;
        if !check.passed {
            check.detail = format!(
                "could not make a target without Python (needs `unshare` and the right to mount): {}",
                check.detail
            );
        }
        check
    }
}
