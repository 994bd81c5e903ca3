//! The zipapp tier: build the `.pyz`, and smoke-test it with an interpreter that has none
//! of its dependencies.

use crate::{assemble, default_script, ZipappError};
use async_trait::async_trait;
use gradient_core::{
    Artifact, Backend, BackendError, BuildContext, Host, Input, InterpreterFacts, Project,
    PythonNeed, SmokeCheck, SmokeContext, SmokeReport, TargetNeeds, Tier, Unavailable,
};
use gradient_python::smoke::{run_check, smoke_commands};
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
            ..TargetNeeds::default()
        }
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Wheelhouse, Input::Wheel]
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        host.require_interpreter()
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let wheel = cx
            .inputs
            .wheel
            .as_ref()
            .ok_or(ZipappError::MissingInput { what: "wheel" })?;
        let wheelhouse = cx
            .inputs
            .wheelhouse
            .as_ref()
            .ok_or(ZipappError::MissingInput { what: "wheelhouse" })?;
        let zipapp = assemble(
            &cx.project,
            &cx.python,
            wheel,
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
        }])
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let wheel = cx
            .inputs
            .wheel
            .as_ref()
            .ok_or(ZipappError::MissingInput { what: "wheel" })?;
        let default = default_script(&cx.project, wheel)?;
        let info = gradient_wheel::metadata::inspect_wheel(wheel)?;
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
        if !scripts.contains(&default) {
            scripts.push(default.clone());
        }
        for (index, (argv, expect)) in smoke_commands(&cx.project, &scripts)
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
            checks.push(run_check(argv.join(" "), command, expect.as_deref()).await);

            if argv[0] == default {
                let mut command = Command::new(&python);
                command.arg("-I").arg(&artifact.path).args(&argv[1..]);
                isolate(&mut command, &bin, &cx.scratch, &format!("cache-{index}"));
                let shown = format!(
                    "python{} -I {} {}",
                    cx.python.short_version(),
                    artifact.file_name(),
                    argv[1..].join(" ")
                );
                checks.push(run_check(shown, command, expect.as_deref()).await);

                checks.push(
                    concurrent_first_runs(
                        &python,
                        artifact,
                        &argv,
                        expect.as_deref(),
                        &bin,
                        &cx.scratch,
                    )
                    .await,
                );
            }
        }
        Ok(SmokeReport { checks })
    }
}

/// Two first runs at once on an empty cache: both must pass and leave one extraction.
async fn concurrent_first_runs(
    python: &Path,
    artifact: &Artifact,
    argv: &[String],
    expect: Option<&str>,
    bin: &Path,
    scratch: &Path,
) -> SmokeCheck {
    let started = std::time::Instant::now();
    let cache = "cache-concurrent";
    let run = || {
        let mut command = Command::new(python);
        command.arg("-I").arg(&artifact.path).args(&argv[1..]);
        isolate(&mut command, bin, scratch, cache);
        run_check(String::new(), command, expect)
    };
    let (first, second) = tokio::join!(run(), run());
    let extractions = std::fs::read_dir(scratch.join(cache).join("gradient/pyz"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    let failed = [&first, &second].into_iter().find(|c| !c.passed);
    SmokeCheck {
        command: format!(
            "2 concurrent first runs of {} {}",
            artifact.file_name(),
            argv[1..].join(" ")
        ),
        passed: failed.is_none() && extractions == 1,
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        detail: match failed {
            Some(check) => check.detail.clone(),
            None if extractions != 1 => {
                format!("{extractions} extraction folders in the cache, expected 1")
            }
            None => "both passed and left one extraction".into(),
        },
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
