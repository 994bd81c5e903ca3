//! Running an artifact the way a target would, and judging what it did.

use gradient_core::{SmokeCheck, Startup};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// How long one smoke command may run.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// Run `command` (shown to users as `shown`) and check that it exits 0 and, when `expect` is
/// given, that its standard output contains it.
pub async fn run_check(shown: String, mut command: Command, expect: Option<&str>) -> SmokeCheck {
    let started = Instant::now();
    // Killed whole on a timeout or when the run stops: an app's own children (a server's
    // workers, a process pool) must not outlive the check.
    let output = crate::ProcessGroup::output_of(&mut command);
    let result = tokio::time::timeout(SMOKE_TIMEOUT, output).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = |exit_code, detail: String| SmokeCheck {
        command: shown.clone(),
        passed: false,
        exit_code,
        seconds,
        detail,
    };
    let output = match result {
        Err(_) => {
            return failed(
                None,
                format!("did not finish within {}s", SMOKE_TIMEOUT.as_secs()),
            )
        }
        Ok(Err(err)) => return failed(None, format!("could not be started: {err}")),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let excerpt = || crate::process::tail(&format!("{stdout}{stderr}"), 12);
    if !output.status.success() {
        return failed(
            code,
            format!("exited with {}\n{}", output.status, excerpt()),
        );
    }
    if let Some(expected) = expect {
        if !stdout.contains(expected) {
            return failed(
                code,
                format!("expected `{expected}` in its output, got:\n{}", excerpt()),
            );
        }
    }
    SmokeCheck {
        command: shown,
        passed: true,
        exit_code: code,
        seconds,
        detail: match expect {
            Some(expected) => format!("printed `{expected}`"),
            None => "exited 0".to_string(),
        },
    }
}

/// Run `argv` twice in a row, each built by `make`: the first run (the caller points the
/// artifact's caches at an empty folder) and the warm one. Both must pass as smoke checks.
pub async fn measure_startup(
    argv: &[String],
    make: impl Fn() -> Command,
    expect: Option<&str>,
) -> Result<Startup, StartupFailed> {
    let command = argv.join(" ");
    measure_runs(argv, || run_check(command.clone(), make(), expect)).await
}

/// Start-up from two runs of `argv` by `run` (a smoke check each), the first and the warm.
pub async fn measure_runs<F: std::future::Future<Output = SmokeCheck>>(
    argv: &[String],
    run: impl Fn() -> F,
) -> Result<Startup, StartupFailed> {
    let command = argv.join(" ");
    let first = run().await;
    let warm = run().await;
    if let Some(failed) = [&first, &warm].into_iter().find(|c| !c.passed) {
        return Err(StartupFailed {
            command,
            detail: failed.detail.clone(),
        });
    }
    Ok(Startup {
        command,
        first_run_seconds: first.seconds,
        warm_seconds: warm.seconds,
    })
}

/// A start-up measurement whose command failed.
#[derive(Debug, thiserror::Error)]
#[error("measuring the start-up of `{command}`: {detail}")]
pub struct StartupFailed {
    pub command: String,
    pub detail: String,
}

/// The command start-up is measured by: `[tool.gradient.smoke]`'s, else the main script's
/// `--help` (the one `entry` names, else the one named like the project, else the first of
/// `scripts`), so that every tier times the same command.
pub fn startup_command<'a>(
    project: &gradient_core::Project,
    scripts: impl IntoIterator<Item = &'a String>,
) -> Option<(Vec<String>, Option<String>)> {
    let scripts: Vec<&String> = scripts.into_iter().collect();
    let named = project.name.as_deref().map(gradient_core::normalize_name);
    let main = scripts
        .iter()
        .find(|s| project.config.entry.as_deref() == Some(s.as_str()))
        .or_else(|| {
            scripts
                .iter()
                .find(|s| Some(gradient_core::normalize_name(s)) == named)
        })
        .or(scripts.first())
        .copied();
    smoke_commands(project, main).into_iter().next()
}

/// The commands a smoke test runs: `[tool.gradient.smoke]` when the project has it, else
/// every console script with `--help`. Each is `(argv, expected output)`.
pub fn smoke_commands<'a>(
    project: &gradient_core::Project,
    scripts: impl IntoIterator<Item = &'a String>,
) -> Vec<(Vec<String>, Option<String>)> {
    match &project.config.smoke {
        Some(smoke) => vec![(smoke.command.clone(), smoke.expect.clone())],
        None => scripts
            .into_iter()
            .map(|script| (vec![script.clone(), "--help".to_string()], None))
            .collect(),
    }
}

/// Two runs at once: both must pass. Reported as one check.
pub async fn concurrent_runs(
    shown: String,
    make: impl Fn() -> Command,
    expect: Option<&str>,
) -> SmokeCheck {
    let started = Instant::now();
    let (first, second) = tokio::join!(
        run_check(String::new(), make(), expect),
        run_check(String::new(), make(), expect)
    );
    let failed = [&first, &second].into_iter().find(|c| !c.passed);
    SmokeCheck {
        command: shown,
        passed: failed.is_none(),
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        detail: match failed {
            Some(check) => check.detail.clone(),
            None => "both passed".into(),
        },
    }
}

/// Two first runs at once on an empty cache: both must pass, and the cache folder
/// `extractions` must then hold exactly one extraction (dot-named staging and lock files
/// aside). `make` builds each run's command; the pair is reported as one check.
pub async fn concurrent_first_runs(
    shown: String,
    make: impl Fn() -> Command,
    expect: Option<&str>,
    extractions: &std::path::Path,
) -> SmokeCheck {
    let mut check = concurrent_runs(shown, make, expect).await;
    let count = std::fs::read_dir(extractions)
        .map(|dir| {
            dir.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    if check.passed && count != 1 {
        check.passed = false;
        check.detail = format!("{count} extraction folders in the cache, expected 1");
    } else if check.passed {
        check.detail = "both passed and left one extraction".into();
    }
    check
}
