//! The zipapp tier: build the `.pyz`, and smoke-test it with an interpreter that has none
//! of its dependencies.

use crate::assemble;
use async_trait::async_trait;
use gradient_core::{
    AppIdentity, AppScripts, Artifact, Backend, BackendError, BuildContext, Host, Input,
    InterpreterFacts, PlannedFile, ProbeOutput, Project, PythonNeed, SmokeContext, SmokeReport,
    Startup, TargetNeeds, Tier, Unavailable,
};
use gradient_python::smoke::{
    concurrent_first_runs, measure_startup, run_check, run_probe, smoke_commands, startup_command,
    SmokeCommand,
};
use gradient_python::Installer;
use std::path::Path;
use tokio::process::Command;

/// Single-file zipapps. Smoke test: run through its `#!` line and with `python -I` from a
/// fresh virtual environment (so the host's site-packages cannot stand in for a missing
/// dependency), HOME and caches empty; then twice at once on an empty cache, which must
/// leave exactly one extraction.
pub struct ZipappTier {
    pub installer: Installer,
}

#[async_trait]
impl Backend for ZipappTier {
    fn tier(&self) -> Tier {
        Tier::Zipapp
    }

    /// One archive for every platform when nothing in it is compiled; else one per
    /// platform, each from that platform's wheelhouse.
    fn platform_scope(&self) -> gradient_core::PlatformScope {
        gradient_core::PlatformScope::Together
    }

    fn target_needs(&self, _project: &Project, python: &InterpreterFacts) -> TargetNeeds {
        TargetNeeds {
            python: Some(PythonNeed {
                version: Some(python.short_version()),
                implementation: Some(python.implementation.clone()),
            }),
            carries: gradient_core::Carries::DEPENDENCIES,
            ..TargetNeeds::default()
        }
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Wheelhouse, Input::Wheel]
    }

    fn artifact_files(
        &self,
        _project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        let name = gradient_core::normalize_name(&app.name);
        let file = crate::assemble::file_name(&name, app.version_in_name());
        // Whether the archive carries compiled code, and so is made once per platform, only
        // the build knows: the names of the other platforms' archives are predictions.
        let mut files = vec![app.planned(file.clone())];
        for foreign in platforms.iter().filter(|p| !p.is_host()) {
            files.push(PlannedFile {
                name: platform_file_name(Path::new(&file), *foreign),
                settled: false,
            });
        }
        files
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()
    }

    /// One archive per platform, each from that platform's wheelhouse; when none carries
    /// compiled code and all have the same bytes, the one serves every platform. Otherwise
    /// each other platform's is named after it (`NAME-VERSION-linux-aarch64.pyz`).
    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let mut built = Vec::new();
        for (index, inputs) in cx.targets.iter().enumerate() {
            let work_dir = match inputs.platform() {
                Some(platform) if index > 0 => cx.work_dir.join(platform.machine()),
                _ => cx.work_dir.clone(),
            };
            std::fs::create_dir_all(&work_dir)?;
            let assemble_for = |python: std::sync::Arc<InterpreterFacts>| {
                let work_dir = work_dir.clone();
                async move {
                    let zipapp = assemble(
                        &cx.project,
                        &python,
                        inputs.app()?,
                        &inputs.wheelhouse()?.site,
                        &work_dir,
                        cx.source_date,
                    )
                    .await?;
                    Ok::<_, BackendError>((python, zipapp))
                }
            };
            let (mut python, mut zipapp) = assemble_for(cx.python.clone()).await?;
            // An archive with compiled code records the platform it was made for, and checks
            // it when it runs: another platform's is made again with that platform named. A
            // pure one names the build's, which it never checks, so that pure archives of
            // two platforms can be the same bytes.
            if let (true, Some(target)) = (zipapp.has_native_code, &inputs.target) {
                (python, zipapp) = assemble_for(std::sync::Arc::new(InterpreterFacts {
                    platform_tag: format!("linux_{}", target.platform.machine()),
                    ..(*cx.python).clone()
                }))
                .await?;
            }
            built.push((inputs.platform(), python.platform_tag.clone(), zipapp));
        }
        let first = std::fs::read(&built[0].2.path)?;
        let mut shared = true;
        for (_, _, zipapp) in &built {
            shared &= !zipapp.has_native_code && std::fs::read(&zipapp.path)? == first;
        }
        let mut artifacts = Vec::new();
        for (platform, platform_tag, zipapp) in built {
            let mut needs = self.target_needs(&cx.project, &cx.python);
            if shared {
                artifacts.push(Artifact {
                    tier: Tier::Zipapp,
                    path: zipapp.path,
                    needs,
                    platform: None,
                });
                break;
            }
            if zipapp.has_native_code {
                needs.platform = Some(platform_tag);
            }
            let mut path = zipapp.path;
            if let Some(foreign) = platform.filter(|p| !p.is_host()) {
                let named = path.with_file_name(platform_file_name(&path, foreign));
                std::fs::rename(&path, &named)?;
                path = named;
            }
            artifacts.push(Artifact {
                tier: Tier::Zipapp,
                path,
                needs,
                platform,
            });
        }
        Ok(artifacts)
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let app = cx.inputs.app()?;
        let default = &app.scripts()?.default;
        let info = &app.info;
        let venv = cx.scratch.join("venv");
        let python = match &cx.inputs.target {
            None => {
                self.installer
                    .create_venv(&cx.python.executable, &venv)
                    .await?
            }
            Some(target) => target_python(target, cx, &venv, &cx.python.short_version())?,
        };
        let bin = venv.join("bin");
        let root = cx.inputs.target.as_ref().map(|t| t.root.as_path());
        let links = cx.scratch.join("links");
        std::fs::create_dir_all(&links)?;
        let mut checks = Vec::new();
        let mut scripts: Vec<String> = info.console_scripts.keys().cloned().collect();
        if let Some(default) = default.as_ref().filter(|d| !scripts.contains(d)) {
            scripts.push(default.clone());
        }
        for (index, SmokeCommand { argv, expect }) in
            smoke_commands(&cx.project, cx.reference.as_deref(), &scripts)
                .into_iter()
                .enumerate()
        {
            // Through the #! line, under the script's own name (a symlink, as a user would
            // install it), which also exercises the dispatch on the invoked name.
            let link = links.join(&argv[0]);
            if !link.exists() {
                std::os::unix::fs::symlink(&artifact.path, &link)?;
            }
            let mut command = Command::new(&link);
            command.args(&argv[1..]);
            isolate(
                &mut command,
                &bin,
                &cx.scratch,
                &format!("cache-{index}"),
                root,
            );
            checks.push(run_check(argv.join(" "), command, &expect).await);

            // The main command once more, run by the interpreter as `python app.pyz`
            // (which only a file with a default can do), and twice at once on an empty
            // cache. A multi-call file without a default is run by the first command's name.
            let main = match &default {
                Some(default) => &argv[0] == default,
                None => index == 0,
            };
            if main {
                let by_python = default.is_some();
                if by_python {
                    let mut command = Command::new(&python);
                    command.arg("-I").arg(&artifact.path).args(&argv[1..]);
                    isolate(
                        &mut command,
                        &bin,
                        &cx.scratch,
                        &format!("cache-{index}"),
                        root,
                    );
                    let shown = format!(
                        "python{} -I {} {}",
                        cx.python.short_version(),
                        artifact.file_name(),
                        argv[1..].join(" ")
                    );
                    checks.push(run_check(shown, command, &expect).await);
                }

                if expect.http.is_some() {
                    continue; // two servers at once cannot share the port
                }
                let make = || {
                    let mut command = if by_python {
                        let mut command = Command::new(&python);
                        command.arg("-I").arg(&artifact.path);
                        command
                    } else {
                        Command::new(&link)
                    };
                    command.args(&argv[1..]);
                    isolate(&mut command, &bin, &cx.scratch, "cache-concurrent", root);
                    command
                };
                let extractions = cx.scratch.join("cache-concurrent/gradient/pyz");
                let shown = format!(
                    "2 concurrent first runs of {} {}",
                    if by_python {
                        artifact.file_name()
                    } else {
                        argv[0].clone()
                    },
                    argv[1..].join(" ")
                );
                checks.push(concurrent_first_runs(shown, make, &expect, &extractions).await);
            }
        }
        Ok(SmokeReport { checks })
    }

    /// The smoke test's venv's Python (the target's Python), with the archive set up as its
    /// `__main__` sets it up before running a script.
    async fn probe(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        let bin = cx.scratch.join("venv/bin");
        // The archive's path rides as the program's argument, never inside its text.
        let setup = "import sys, zipimport as _z\n_archive = sys.argv[1]\n\
             _ns = {'__name__': '__gradient_probe__', '__file__': _archive + '/__main__.py'}\n\
             exec(_z.zipimporter(_archive).get_code('__main__'), _ns)\n_ns['setup'](_archive)\n";
        let mut command = Command::new(bin.join("python"));
        command
            .arg("-I")
            .arg("-c")
            .arg(format!("{setup}{code}"))
            .arg(&artifact.path);
        let root = target_root(cx);
        isolate(&mut command, &bin, &cx.scratch, "cache-0", root.as_deref());
        let shown = format!(
            "python -I -c PROBE, after {}'s own set-up",
            artifact.file_name()
        );
        Ok(Some(run_probe(shown, command).await))
    }

    /// Through the `#!` line (the smoke test's fresh venv first on PATH), on an empty
    /// extraction cache, then warm.
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
        let bin = cx.scratch.join("venv/bin");
        let link = cx.scratch.join("startup").join(&argv[0]);
        std::fs::create_dir_all(cx.scratch.join("startup"))?;
        if !link.exists() {
            std::os::unix::fs::symlink(&artifact.path, &link)?;
        }
        let make = || {
            let mut command = Command::new(&link);
            command.args(&argv[1..]);
            isolate(
                &mut command,
                &bin,
                &cx.scratch,
                "cache-startup",
                target_root(cx).as_deref(),
            );
            command
        };
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

/// A target's view: only the fresh environment's bin and the system's on PATH, empty HOME
/// and cache.
/// For another platform's archive, `root` is the target system, whose Python runs under
/// qemu-user with its libraries found there (`QEMU_LD_PREFIX`).
fn isolate(command: &mut Command, bin: &Path, scratch: &Path, cache: &str, root: Option<&Path>) {
    command
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", scratch.join("home"))
        .env("XDG_CACHE_HOME", scratch.join(cache))
        .env("LANG", "C.UTF-8")
        .current_dir(scratch);
    if let Some(root) = root {
        command.env("QEMU_LD_PREFIX", root);
    }
}

/// `NAME-VERSION-linux-aarch64.pyz`: the archive of another platform than the host's.
fn platform_file_name(file: &Path, platform: gradient_core::Platform) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}-linux-{}.pyz", platform.machine())
}

/// The smoke test's copy of the target system, for another platform's archive.
fn target_root(cx: &SmokeContext) -> Option<std::path::PathBuf> {
    cx.inputs
        .target
        .as_ref()
        .map(|_| cx.scratch.join("target-root"))
}

/// The target's own Python, as the smoke test's environment: `venv/bin/python`, `python3`
/// and `pythonX.Y` link to the interpreter of a copy of the target system (Debian's, for
/// another platform), whose site-packages hold nothing of the host's. The copy is of links
/// to the same files (a plain copy where the cache is on another file system): what the
/// interpreter writes there (the standard library's `__pycache__`) must not change the
/// shared root, whose seal would break. Returns the `python` link.
fn target_python(
    target: &gradient_core::TargetSystem,
    cx: &SmokeContext,
    venv: &Path,
    version: &str,
) -> std::io::Result<std::path::PathBuf> {
    let copy = target_root(cx).expect("a target system");
    if !copy.exists() {
        let linked = std::process::Command::new("cp")
            .arg("-al")
            .arg(&target.root)
            .arg(&copy)
            .status()?;
        if !linked.success() {
            let _ = std::fs::remove_dir_all(&copy);
            let copied = std::process::Command::new("cp")
                .arg("-a")
                .arg(&target.root)
                .arg(&copy)
                .status()?;
            if !copied.success() {
                return Err(std::io::Error::other(format!(
                    "could not copy `{}` to `{}`",
                    target.root.display(),
                    copy.display()
                )));
            }
        }
    }
    let bin = venv.join("bin");
    std::fs::create_dir_all(&bin)?;
    let interpreter = copy.join(format!("usr/bin/python{version}"));
    for name in [
        "python".to_string(),
        "python3".into(),
        format!("python{version}"),
    ] {
        let link = bin.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(&interpreter, &link)?;
        }
    }
    Ok(bin.join("python"))
}
