//! The differential smoke test's reference: the app's wheel installed from the same lock
//! into a fresh venv of the build interpreter, and the probe program (`probe.py`) that runs
//! there and, through each tier, with every artifact's own Python.

use crate::installer::{Installer, Source};
use crate::smoke::output_within_timeout;
use base64::Engine as _;
use gradient_core::reference::{ProbePlan, ProbeResult, Reference};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use tokio::process::Command;

const PROBE: &str = include_str!("probe.py");

/// The probe program that checks `plan` and prints a [`ProbeResult`] as JSON: what each
/// tier runs with its artifact's Python (`python -c PROGRAM`).
pub fn check_program(plan: &ProbePlan) -> String {
    program(&serde_json::json!({ "plan": plan }))
}

/// Read what [`check_program`] printed.
pub fn parse_result(stdout: &str) -> Result<ProbeResult, String> {
    #[derive(serde::Deserialize)]
    struct Reply {
        result: ProbeResult,
    }
    serde_json::from_str::<Reply>(stdout.trim())
        .map(|reply| reply.result)
        .map_err(|e| format!("the probe's answer is not what it writes ({e})"))
}

/// The request rides in the program text (compressed, base64) so that every tier can run it
/// as `python -c PROGRAM`, with nothing to copy into the artifact's world.
fn program(request: &serde_json::Value) -> String {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(request.to_string().as_bytes())
        .expect("writing to memory");
    let packed =
        base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("in memory"));
    format!("{PROBE}\nmain(\"{packed}\")\n")
}

/// What the reference needs: the app's wheel, its lock, and the names of the distributions
/// to check (the app's and the locked ones).
pub struct ReferenceRequest<'a> {
    pub installer: &'a Installer,
    pub python: &'a Path,
    pub wheel: &'a Path,
    pub lock: &'a Path,
    pub distributions: Vec<String>,
    pub scripts: Vec<String>,
    /// Where the installs take packages from: as the wheel's smoke test does (`--find-links`).
    pub source: Source<'a>,
    /// A fresh folder of its own.
    pub dir: &'a Path,
}

/// Install the app into a fresh venv from its lock, let the probe choose and run the
/// checks there, and note how each console script ends with `--help`.
pub async fn make_reference(request: ReferenceRequest<'_>) -> Result<Reference, String> {
    let venv = request.dir.join("venv");
    let home = request.dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let python = request
        .installer
        .create_venv(request.python, &venv)
        .await
        .map_err(|e| e.to_string())?;
    let lock: Vec<OsString> = vec!["-r".into(), request.lock.into()];
    let locked_dependencies = std::fs::read_to_string(request.lock)
        .map(|text| {
            text.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .unwrap_or(false);
    if locked_dependencies {
        request
            .installer
            .install(&python, &lock, request.source)
            .await
            .map_err(|e| e.to_string())?;
    }
    request
        .installer
        .install(&python, &[request.wheel.into()], request.source)
        .await
        .map_err(|e| e.to_string())?;

    let bin = venv.join("bin");
    let run = |program: &Path| {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("PYTHONNOUSERSITE", "1")
            .current_dir(&home);
        command
    };
    let mut probe = run(&python);
    probe.arg("-I").arg("-c").arg(program(
        &serde_json::json!({ "discover": request.distributions }),
    ));
    let output = finished(&mut probe, "the probe").await?;
    if !output.status.success() {
        return Err(format!(
            "the probe failed in the reference venv ({}):\n{}",
            output.status,
            crate::process::tail(&String::from_utf8_lossy(&output.stderr), 8)
        ));
    }
    #[derive(serde::Deserialize)]
    struct Discovered {
        plan: ProbePlan,
        result: ProbeResult,
    }
    let discovered: Discovered = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the probe's answer in the reference venv is not JSON ({e})"))?;

    let mut help_exit = std::collections::BTreeMap::new();
    for script in &request.scripts {
        let mut command = run(&bin.join(script));
        command.arg("--help");
        let output = finished(&mut command, &format!("{script} --help")).await?;
        // A traceback is a crash, not the script's answer: artifacts must then exit 0
        // rather than crash alike.
        let crashed =
            String::from_utf8_lossy(&output.stderr).contains("Traceback (most recent call last)");
        if let (Some(code), false) = (output.status.code(), crashed) {
            help_exit.insert(script.clone(), code);
        }
    }
    Ok(Reference {
        plan: discovered.plan,
        result: discovered.result,
        help_exit,
    })
}

async fn finished(command: &mut Command, what: &str) -> Result<std::process::Output, String> {
    output_within_timeout(command, None)
        .await
        .map_err(|why| format!("{what} in the reference venv {why}"))
}
