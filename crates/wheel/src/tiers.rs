//! The sdist and wheel tiers: they publish the shared distributions and smoke-test them.

use crate::metadata::{check_against_project, inspect_sdist};
use async_trait::async_trait;
use gradient_core::{
    AppIdentity, Artifact, Backend, BackendError, BuildContext, Host, Input, InterpreterFacts,
    PlannedFile, ProbeOutput, Project, PythonNeed, SmokeCheck, SmokeContext, SmokeReport, Startup,
    TargetNeeds, Tier, Unavailable,
};
use gradient_python::installer::Source;
use gradient_python::smoke::{
    measure_startup, run_check, run_probe, smoke_commands, startup_command, SmokeCommand,
};
use gradient_python::Installer;
use std::ffi::OsString;
use std::path::Path;
use tokio::process::Command;

/// Source distributions. Smoke test: its metadata is checked, and the wheel built from its
/// unpacked copy (what a target installing it does) must be byte-identical to a wheel built
/// straight from the source tree, which proves the sdist carries everything it needs.
pub struct SdistTier;

/// Wheels. Smoke test: installed into a fresh virtual environment (never the host's
/// site-packages), then its console scripts are run.
pub struct WheelTier {
    pub installer: Installer,
}

fn needs_python(project: &Project, build_backend: bool) -> TargetNeeds {
    TargetNeeds {
        python: Some(PythonNeed {
            version: project.requires_python.clone(),
            implementation: None,
        }),
        installer: true,
        build_backend,
        ..TargetNeeds::default()
    }
}

#[async_trait]
impl Backend for SdistTier {
    fn platform_scope(&self) -> gradient_core::PlatformScope {
        gradient_core::PlatformScope::Any
    }

    fn tier(&self) -> Tier {
        Tier::Sdist
    }

    fn target_needs(&self, project: &Project, _python: &InterpreterFacts) -> TargetNeeds {
        needs_python(project, true)
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Sdist, Input::Wheel]
    }

    fn artifact_files(
        &self,
        _project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        _platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        vec![match &app.sdist_file {
            Some(file) => PlannedFile {
                name: file.clone(),
                settled: true,
            },
            // The name the build backends write today (PEP 625); the build has the last word.
            None => PlannedFile {
                name: format!(
                    "{}-{}.tar.gz",
                    distribution_name(app),
                    app.version_in_name()
                ),
                settled: false,
            },
        }]
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let path = cx
            .inputs
            .sdist
            .clone()
            .ok_or("the sdist input was not built")?;
        let mut needs = self.target_needs(&cx.project, &cx.python);
        if let Some(requires_python) = inspect_sdist(&path)?.requires_python {
            needs.python = Some(PythonNeed {
                version: Some(requires_python),
                implementation: None,
            });
        }
        Ok(vec![Artifact {
            tier: Tier::Sdist,
            path,
            needs,
            platform: None,
        }])
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let name = artifact.file_name();
        let metadata_check = match inspect_sdist(&artifact.path)
            .and_then(|m| check_against_project(&name, &m, &cx.project).map(|_| m))
        {
            Ok(m) => SmokeCheck {
                command: format!("read PKG-INFO of {name}"),
                passed: true,
                exit_code: None,
                seconds: 0.0,
                detail: format!("{} {} matches pyproject.toml", m.name, m.version),
            },
            Err(err) => SmokeCheck {
                command: format!("read PKG-INFO of {name}"),
                passed: false,
                exit_code: None,
                seconds: 0.0,
                detail: err.to_string(),
            },
        };
        let mut checks = vec![metadata_check];
        if let Some(comparison) = &cx.inputs.sdist_matches_source {
            checks.push(SmokeCheck {
                command: format!("build a wheel from the unpacked {name} and from the source tree"),
                passed: comparison.is_ok(),
                exit_code: None,
                seconds: 0.0,
                detail: match comparison {
                    Ok(None) if cx.inputs.distributions_cached => {
                        "the two wheels were byte-identical when this cached build was made".into()
                    }
                    Ok(None) => "the two wheels are byte-identical".into(),
                    Ok(Some(note)) => note.clone(),
                    Err(differences) => {
                        format!("the wheels from the sdist and from the tree differ: {differences}")
                    }
                },
            });
        }
        Ok(SmokeReport { checks })
    }
}

#[async_trait]
impl Backend for WheelTier {
    fn platform_scope(&self) -> gradient_core::PlatformScope {
        gradient_core::PlatformScope::Any
    }

    fn tier(&self) -> Tier {
        Tier::Wheel
    }

    fn target_needs(&self, project: &Project, _python: &InterpreterFacts) -> TargetNeeds {
        needs_python(project, false)
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Wheel]
    }

    fn artifact_files(
        &self,
        project: &Project,
        python: &InterpreterFacts,
        app: &AppIdentity,
        _platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        vec![match &app.wheel_file {
            Some(file) => PlannedFile {
                name: file.clone(),
                settled: true,
            },
            // Only the build knows the tags for certain: a project with C, C++, Cython or
            // Rust sources is expected to make a wheel for this interpreter and platform.
            None => {
                let tags = match has_compiled_sources(&project.root) {
                    true => format!(
                        "{}-{}-{}",
                        python.python_tag, python.abi_tag, python.platform_tag
                    ),
                    false => "py3-none-any".to_string(),
                };
                PlannedFile {
                    name: format!(
                        "{}-{}-{tags}.whl",
                        distribution_name(app),
                        app.version_in_name()
                    ),
                    settled: false,
                }
            }
        }]
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let app = cx.inputs.app()?;
        let info = &app.info;
        let mut needs = self.target_needs(&cx.project, &cx.python);
        if let Some(requires_python) = info.metadata.requires_python.clone() {
            needs.python = Some(PythonNeed {
                version: Some(requires_python),
                implementation: None,
            });
        }
        let mut platform = None;
        if !info.is_universal() {
            let platforms: Vec<String> = info.tags.iter().map(|t| t.platform.clone()).collect();
            needs.platform = Some(platforms.join("|"));
            platform = gradient_core::Platform::host();
        }
        Ok(vec![Artifact {
            tier: Tier::Wheel,
            path: app.path.clone(),
            needs,
            platform,
        }])
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let info = &cx.inputs.app()?.info;
        let venv = cx.scratch.join("venv");
        let home = cx.scratch.join("home");
        std::fs::create_dir_all(&home)?;
        let venv_python = self
            .installer
            .create_venv(&cx.python.executable, &venv)
            .await?;
        let source = match &cx.find_links {
            Some(folder) => Source::Offline(folder),
            None => Source::Index,
        };
        let mut checks = Vec::new();
        // A project with a lock deploys the wheel with it: its pins first (hash-checked),
        // then the wheel, whose requirements they already meet.
        if let Some(pinned) = &cx.inputs.pinned {
            let started = std::time::Instant::now();
            let install = self
                .installer
                .install(&venv_python, &["-r".into(), pinned.into()], source)
                .await;
            checks.push(SmokeCheck {
                command: format!(
                    "{} -r the lock's pins",
                    match self.installer {
                        Installer::Uv(_) => "uv pip install",
                        Installer::Pip => "pip install",
                    }
                ),
                passed: install.is_ok(),
                exit_code: None,
                seconds: started.elapsed().as_secs_f64(),
                detail: match &install {
                    Ok(()) => "the locked dependencies installed, every file hash-checked".into(),
                    Err(err) => err.to_string(),
                },
            });
            if install.is_err() {
                return Ok(SmokeReport { checks });
            }
        }
        // After the lock's pins, the wheel alone: a dependency the lock left out must show
        // as missing, not be fetched from the index.
        let mut wheel_install = Vec::new();
        if cx.inputs.pinned.is_some() {
            wheel_install.push(OsString::from("--no-deps"));
        }
        wheel_install.push(OsString::from(&artifact.path));
        let started = std::time::Instant::now();
        let install = self
            .installer
            .install(&venv_python, &wheel_install, source)
            .await;
        checks.push(SmokeCheck {
            command: match self.installer {
                Installer::Uv(_) => format!("uv pip install {}", artifact.file_name()),
                Installer::Pip => format!("pip install {}", artifact.file_name()),
            },

            passed: install.is_ok(),
            exit_code: None,
            seconds: started.elapsed().as_secs_f64(),
            detail: match &install {
                Ok(()) => "installed into a fresh virtual environment".into(),
                Err(err) => err.to_string(),
            },
        });
        if install.is_err() {
            return Ok(SmokeReport { checks });
        }
        let bin = venv.join("bin");
        for SmokeCommand { argv, expect } in smoke_commands(
            &cx.project,
            cx.reference.as_deref(),
            info.console_scripts.keys(),
        ) {
            let mut command = Command::new(bin.join(&argv[0]));
            command.args(&argv[1..]);
            isolate(&mut command, &bin, &home, &cx.scratch);
            checks.push(run_check(argv.join(" "), command, &expect).await);
        }
        Ok(SmokeReport { checks })
    }

    /// The smoke test's environment's Python, as the console scripts run it.
    async fn probe(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        let bin = cx.scratch.join("venv/bin");
        let home = cx.scratch.join("home");
        let mut command = Command::new(bin.join("python"));
        command.arg("-I").arg("-c").arg(code);
        isolate(&mut command, &bin, &home, &cx.scratch);
        Ok(Some(
            run_probe("venv/bin/python -I -c PROBE".into(), command).await,
        ))
    }

    /// The console script in the smoke test's environment. Its first run compiles the app's
    /// and its dependencies' byte-code (the environment's `__pycache__` folders are emptied
    /// first, as after an install that does not compile), the warm run finds it compiled.
    async fn startup(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        let info = &cx.inputs.app()?.info;
        let Some(SmokeCommand { argv, expect }) = startup_command(
            &cx.project,
            cx.reference.as_deref(),
            info.console_scripts.keys(),
        ) else {
            return Ok(None);
        };
        let bin = cx.scratch.join("venv/bin");
        let home = cx.scratch.join("home");
        let caches: Vec<std::path::PathBuf> = walkdir::WalkDir::new(cx.scratch.join("venv/lib"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_dir() && e.file_name() == "__pycache__")
            .map(|e| e.into_path())
            .collect();
        for cache in caches {
            std::fs::remove_dir_all(&cache)?;
        }
        let make = || {
            let mut command = Command::new(bin.join(&argv[0]));
            command.args(&argv[1..]);
            isolate(&mut command, &bin, &home, &cx.scratch);
            command
        };
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

/// Run as a target would: only the environment's own bin and the system's on PATH, a fresh
/// HOME, nothing of the host's Python settings.
fn isolate(command: &mut Command, bin: &Path, home: &Path, cwd: &Path) {
    command
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("PYTHONNOUSERSITE", "1")
        .current_dir(cwd);
}

/// The distribution's name in its files' names: normalised, `_` for separators.
fn distribution_name(app: &AppIdentity) -> String {
    gradient_core::normalize_name(&app.name).replace('-', "_")
}

/// Whether the project's tree holds sources a build backend compiles (`.c`, `.cpp`, `.pyx`,
/// `.rs`, ...), outside hidden, build-output and virtual-environment folders; the first
/// 20,000 entries are looked at.
fn has_compiled_sources(root: &Path) -> bool {
    const COMPILED: [&str; 7] = ["c", "cc", "cpp", "cxx", "pyx", "rs", "f90"];
    const SKIPPED: [&str; 5] = ["build", "dist", "target", "node_modules", "__pycache__"];
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0
                || !(name.starts_with('.')
                    || (e.file_type().is_dir()
                        && (SKIPPED.contains(&name.as_ref())
                            || e.path().join("pyvenv.cfg").exists())))
        })
        .take(20_000)
        .filter_map(Result::ok)
        .any(|e| {
            e.file_type().is_file()
                && e.path()
                    .extension()
                    .is_some_and(|x| COMPILED.contains(&x.to_string_lossy().as_ref()))
        })
}
