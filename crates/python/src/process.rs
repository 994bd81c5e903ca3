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
/// a backend's own subprocesses do not outlive an interrupted build. The child is also
/// killed by the kernel when gradient dies without a chance to drop anything (SIGKILL).
pub struct ProcessGroup {
    pub child: Child,
    group: i32,
}

impl ProcessGroup {
    /// Start `command` in a new process group (its standard streams as the caller set them).
    pub fn spawn(command: &mut Command) -> std::io::Result<ProcessGroup> {
        command.process_group(0).kill_on_drop(true);
        die_with_parent(command);
        let child = command.spawn()?;
        Ok(ProcessGroup {
            group: child.id().map_or(0, |pid| pid as i32),
            child,
        })
    }

    /// Run `command` to its end in a group of its own, with no input and its output
    /// captured (`Command::output`, for a group): its own children (an installer's builds,
    /// an app's workers, a tool's compilers) end with it when the caller is dropped (the
    /// run stopped, a timeout).
    pub async fn output_of(command: &mut Command) -> std::io::Result<std::process::Output> {
        ProcessGroup::output_with_input(command, None).await
    }

    /// As [`ProcessGroup::output_of`], with `input` (when given) written to its standard
    /// input, which is then closed.
    pub async fn output_with_input(
        command: &mut Command,
        input: Option<&[u8]>,
    ) -> std::io::Result<std::process::Output> {
        use tokio::io::AsyncWriteExt;
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut group = ProcessGroup::spawn(command)?;
        let stdin = group.child.stdin.take();
        let feed = async move {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                // A program that exits without reading its input is not an error here.
                let _ = stdin.write_all(input).await;
            }
            Ok(())
        };
        let (_, output) = tokio::try_join!(feed, group.output())?;
        Ok(output)
    }

    /// Kill every process of the group now.
    pub fn kill(&self) {
        if self.group > 0 {
            // SAFETY: kill(2) on our own child's process group; no memory is touched.
            unsafe {
                libc::kill(-self.group, libc::SIGKILL);
            }
        }
    }

    /// Wait for the child, collecting what it prints (`Command::output`, for a group).
    pub async fn output(mut self) -> std::io::Result<std::process::Output> {
        use tokio::io::AsyncReadExt;
        async fn read_all(pipe: Option<impl AsyncReadExt + Unpin>) -> std::io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).await?;
            }
            Ok(bytes)
        }
        let (stdout, stderr) = (self.child.stdout.take(), self.child.stderr.take());
        let (status, stdout, stderr) =
            tokio::try_join!(self.child.wait(), read_all(stdout), read_all(stderr))?;
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Have the kernel SIGKILL the child when the thread that started it ends, which for
/// gradient is the process ending: children are started from the run's futures, polled by
/// the main thread (`block_on`) or the runtime's threads, which the binary keeps alive for
/// the whole run (a worker that gave its core away in `block_in_place` joins the blocking
/// pool, whose idle threads would otherwise end after ten seconds).
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid, raise).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // gradient died before the request above was made.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
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
    let output =
        ProcessGroup::output_of(command)
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
