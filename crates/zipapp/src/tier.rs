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
        _platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        let name = gradient_core::normalize_name(&app.name);
        vec![app.planned(crate::assemble::file_name(&name, app.version_in_name()))]
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let wheelhouse = cx.inputs.wheelhouse()?;
        let zipapp = assemble(
            &cx.project,
            &cx.python,
            cx.inputs.app()?,
            &wheelhouse.site,
            &cx.work_dir,
            cx.source_date,
        )
        .await?;
        let mut needs = self.target_needs(&cx.project, &cx.python);
        if zipapp.has_native_code {
            needs.platform = Some(cx.python.platform_tag.clone());
        }
        Ok(vec![Artifact {
            tier: Tier::Zipapp,
            path: zipapp.path,
            needs,
            platform: zipapp
                .has_native_code
                .then(|| cx.inputs.platform())
                .flatten(),
        }])
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
        let python = self
            .installer
            .create_venv(&cx.python.executable, &venv)
            .await?;
        let bin = venv.join("bin");
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
            isolate(&mut command, &bin, &cx.scratch, &format!("cache-{index}"));
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
                    isolate(&mut command, &bin, &cx.scratch, &format!("cache-{index}"));
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
                    isolate(&mut command, &bin, &cx.scratch, "cache-concurrent");
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
        isolate(&mut command, &bin, &cx.scratch, "cache-0");
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
            isolate(&mut command, &bin, &cx.scratch, "cache-startup");
            command
        };
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

/// A target's view: only the fresh environment's bin and the system's on PATH, empty HOME
/// and cache.
fn isolate(command: &mut Command, bin: &Path, scratch: &Path, cache: &str) {
    command
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", scratch.join("home"))
        .env("XDG_CACHE_HOME", scratch.join(cache))
        .env("LANG", "C.UTF-8")
        .current_dir(scratch);
}
