//! Child processes: an environment free of the host's Python settings, and process groups
//! that die with their owner so that an interrupted build leaves nothing running.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Variables that would let the host's Python configuration leak into a build or a smoke
/// test. Removed from every Python process gradient starts.
const LEAKY_VARIABLES: &[&str] = &[
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONEXECUTABLE",
    "PYTHONSAFEPATH",
    "PIP_REQUIRE_VIRTUALENV",
    "PIP_USER",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "__PYVENV_LAUNCHER__",
];

/// The current environment minus [`LEAKY_VARIABLES`], plus user site-packages turned off.
pub fn isolated_env() -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os()
        .filter(|(k, _)| !LEAKY_VARIABLES.iter().any(|leaky| k == leaky))
        .collect();
    env.insert("PYTHONNOUSERSITE".into(), "1".into());
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env
}

/// A child started in its own process group; dropping the guard kills the whole group, so
/// a backend's own subprocesses do not outlive an interrupted build.
pub struct ProcessGroup {
    pub child: Child,
}

impl ProcessGroup {
    /// Start `command` in a new process group with piped stdio.
    pub fn spawn(command: &mut Command) -> std::io::Result<ProcessGroup> {
        command
            .process_group(0)
            .kill_on_drop(true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(ProcessGroup {
            child: command.spawn()?,
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's process group; no memory is touched.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// The last `lines` lines of `text`, for error messages.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run a command to completion with captured output; a non-zero exit becomes an error that
/// shows the output's tail.
pub(crate) async fn run_checked(
    command: &mut Command,
    action: &str,
) -> Result<std::process::Output, crate::PythonError> {
    // The program and its arguments only: the environment (tokens, index passwords) is
    // never rendered.
    let std = command.as_std();
    let args: Vec<&std::ffi::OsStr> = std.get_args().collect();
    let shown = gradient_core::show_command(std.get_program(), &args);
    command.kill_on_drop(true).stdin(Stdio::null());
    let output = command
        .output()
        .await
        .map_err(|source| crate::PythonError::Command {
            action: action.to_string(),
            command: shown.clone(),
            status: format!("an error: {source}"),
            tail: String::new(),
        })?;
    if !output.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return Err(crate::PythonError::Command {
            action: action.to_string(),
            command: shown,
            status: output.status.to_string(),
            tail: tail(&gradient_core::redact(&text), 20),
        });
    }
    Ok(output)
}

/// Whether this process runs as root: smoke tests that need namespaces add a user
/// namespace only when it does not.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
