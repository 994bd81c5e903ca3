//! The PEP 517 frontend's hook runner: one Python process that imports the backend once and
//! serves every hook call (`get_requires_for_build_*`, `build_sdist`, `build_wheel`) of a
//! build, instead of one process per hook; that is most of why gradient's builds are faster
//! than other frontends'. It can move to another source tree (the unpacked sdist) with
//! [`HookRunner::chdir`]; callers start a new runner instead when the backend lives in the
//! tree (`backend-path`), so that each tree is built by its own copy of the backend.

use crate::process::{tail, ProcessGroup};
use crate::staging::Staged;
use gradient_core::BuildSystem;
use serde_json::Value;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

const RUNNER: &str = include_str!("runner.py");

/// How many lines of backend output an error shows.
const TAIL_LINES: usize = 25;

/// How much of the backend's output is kept in memory, for errors: the last lines, at most
/// this many and this many bytes (a longer line is cut). All of it goes to a log file.
const KEPT_LINES: usize = 200;
const KEPT_BYTES: usize = 64 * 1024;
const LINE_BYTES: usize = 4 * 1024;

/// How many logs of failed hooks `CACHE/logs` keeps, the newest.
const KEPT_LOGS: usize = 20;

/// How hooks run: how long one may take, and where the backend's output is logged.
#[derive(Clone, Debug)]
pub struct HookSettings {
    /// A hook (or the backend's import) still running after this long is stopped; `None`
    /// waits for ever.
    pub timeout: Option<Duration>,
    /// gradient's cache: the backend's output is written to `logs/` there, and kept when an
    /// error names it.
    pub cache_root: PathBuf,
}

impl gradient_core::Hint for HookError {
    fn hint(&self) -> Option<String> {
        match self {
            HookError::Unavailable { pyproject, .. } => Some(format!(
                "check `build-backend` and `requires` in [build-system] of `{}`",
                pyproject.display()
            )),
            HookError::Failed { .. } => Some("run with -v to see the output as it comes".into()),
            HookError::TimedOut { .. } => {
                Some("allow it longer with --hook-timeout SECONDS (0 for no limit)".into())
            }
            _ => None,
        }
    }
}

/// Why a hook call failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("failed to import the build backend `{backend}`: {message}\n{tail}")]
    Unavailable {
        backend: String,
        message: String,
        tail: String,
        pyproject: PathBuf,
    },
    #[error("the build backend's `{hook}` hook failed: {message}\n  last lines of the backend's output:\n{tail}")]
    Failed {
        hook: String,
        message: String,
        tail: String,
    },
    #[error("the build backend `{backend}` cannot `{hook}`: {message}")]
    Missing {
        backend: String,
        hook: String,
        message: String,
    },
    #[error("the build backend's process ended unexpectedly during `{hook}`\n{tail}")]
    Crashed { hook: String, tail: String },
    #[error("the build backend's `{hook}` hook did not finish within {seconds} seconds and was stopped\n  last lines of the backend's output:\n{tail}")]
    TimedOut {
        hook: String,
        seconds: u64,
        tail: String,
    },
    #[error("failed to run the PEP 517 hook runner with `{}`", python.display())]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The backend's output: its last lines in memory, all of it in a log file (a staging file
/// in `CACHE/logs`, removed with the runner unless an error names it).
struct Output {
    tail: VecDeque<String>,
    tail_bytes: usize,
    log: Option<Staged>,
    /// Where the log was kept, once an error named it.
    kept: Option<PathBuf>,
}

impl Output {
    fn push(&mut self, line: String) {
        self.tail_bytes += line.len();
        self.tail.push_back(line);
        while self.tail.len() > KEPT_LINES || (self.tail_bytes > KEPT_BYTES && self.tail.len() > 1)
        {
            let gone = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= gone.len();
        }
    }

    /// Keep the log under its final name, `CACHE/logs/backend-SECONDS-PID-HOOK.log`, and
    /// drop the oldest beyond [`KEPT_LOGS`]; its path, or `None` when there is no log.
    fn keep_log(&mut self, hook: &str) -> Option<PathBuf> {
        if self.kept.is_none() {
            let mut log = self.log.take()?;
            let folder = log.path().parent()?.to_path_buf();
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let name = format!("backend-{seconds}-{}-{hook}.log", std::process::id());
            let path = folder.join(name);
            log.persist(&path).ok()?;
            prune_logs(&folder);
            self.kept = Some(path);
        }
        self.kept.clone()
    }
}

/// Remove the oldest kept logs beyond [`KEPT_LOGS`] (their names sort by time).
fn prune_logs(folder: &Path) {
    let mut logs: Vec<String> = std::fs::read_dir(folder)
        .map(|listing| {
            listing
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("backend-") && name.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort_by_key(|name| {
        let seconds = name.split('-').nth(1).and_then(|s| s.parse::<u64>().ok());
        (seconds, name.clone())
    });
    for name in logs.iter().rev().skip(KEPT_LOGS) {
        let _ = std::fs::remove_file(folder.join(name));
    }
}

/// Where a staging log of a runner goes (`.backend-*.log`, swept when its run is gone).
pub fn logs_folder(cache_root: &Path) -> PathBuf {
    cache_root.join("logs")
}

/// The prefix of the logs a runner writes while it runs.
pub const LOG_STAGING_PREFIX: &str = ".backend-";

/// A running hook runner for one build environment and one source tree.
pub struct HookRunner {
    group: ProcessGroup,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    output: Arc<Mutex<Output>>,
    /// The reader of the backend's output, finished when the runner's stderr closes.
    reader: tokio::task::JoinHandle<()>,
    backend: String,
    timeout: Option<Duration>,
}

impl HookRunner {
    /// Start the runner in `source_dir` with the environment's `python`, and import the backend.
    pub async fn start(
        python: &Path,
        source_dir: &Path,
        build_system: &BuildSystem,
        extra_env: &[(OsString, OsString)],
        settings: &HookSettings,
    ) -> Result<HookRunner, HookError> {
        let mut command = Command::new(python);
        command
            .arg("-c")
            .arg(RUNNER)
            .arg(&build_system.backend)
            .arg(serde_json::to_string(&build_system.backend_path).unwrap_or_else(|_| "[]".into()))
            .current_dir(source_dir)
            .env_clear()
            .envs(crate::isolated_env())
            .envs(extra_env.iter().cloned())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut group = ProcessGroup::spawn(&mut command).map_err(|source| HookError::Spawn {
            python: python.to_path_buf(),
            source,
        })?;
        let stdin = group.child.stdin.take().expect("piped stdin");
        let stdout = group.child.stdout.take().expect("piped stdout");
        let stderr = group.child.stderr.take().expect("piped stderr");
        // No log (an unwritable cache) costs only the whole output, never the build.
        let logs = logs_folder(&settings.cache_root);
        let log = std::fs::create_dir_all(&logs)
            .and_then(|()| Staged::file_in(&logs, LOG_STAGING_PREFIX))
            .inspect_err(|e| tracing::debug!("no log of the backend's output: {e}"))
            .ok();
        let writer = log.as_ref().and_then(|log| log.file().try_clone().ok());
        let output = Arc::new(Mutex::new(Output {
            tail: VecDeque::new(),
            tail_bytes: 0,
            log,
            kept: None,
        }));
        let reader = tokio::spawn(read_output(stderr, writer, output.clone()));
        let mut runner = HookRunner {
            group,
            stdin,
            replies: BufReader::new(stdout).lines(),
            output,
            reader,
            backend: build_system.backend.clone(),
            timeout: settings.timeout,
        };
        match runner.read_reply("import").await? {
            Ok(_) => Ok(runner),
            Err((_, message)) => Err(HookError::Unavailable {
                backend: build_system.backend.clone(),
                message,
                tail: runner.tail("import").await,
                pyproject: source_dir.join(gradient_core::PYPROJECT),
            }),
        }
    }

    /// Call `hook` with positional `args`; returns the hook's JSON result.
    pub async fn call(&mut self, hook: &str, args: Vec<Value>) -> Result<Value, HookError> {
        let request = serde_json::json!({ "hook": hook, "args": args });
        let line = format!("{request}\n");
        if self.stdin.write_all(line.as_bytes()).await.is_err() {
            return Err(HookError::Crashed {
                hook: hook.to_string(),
                tail: self.tail(hook).await,
            });
        }
        let _ = self.stdin.flush().await;
        match self.read_reply(hook).await? {
            Ok(value) => Ok(value),
            Err((kind, message)) if kind == "missing" => Err(HookError::Missing {
                backend: self.backend.clone(),
                hook: hook.to_string(),
                message,
            }),
            Err((_, message)) => Err(HookError::Failed {
                hook: hook.to_string(),
                message,
                tail: self.tail(hook).await,
            }),
        }
    }

    /// Move the runner to another source tree (the unpacked sdist).
    pub async fn chdir(&mut self, dir: &Path) -> Result<(), HookError> {
        let request = serde_json::json!({ "hook": "chdir", "path": dir });
        let _ = self
            .stdin
            .write_all(format!("{request}\n").as_bytes())
            .await;
        self.read_reply("chdir")
            .await?
            .map(|_| ())
            .map_err(|(_, message)| HookError::Failed {
                hook: "chdir".into(),
                message,
                tail: String::new(),
            })
    }

    /// Close the runner and wait for it.
    pub async fn finish(mut self) {
        drop(self.stdin);
        let _ = self.group.child.wait().await;
    }

    async fn read_reply(
        &mut self,
        hook: &str,
    ) -> Result<Result<Value, (String, String)>, HookError> {
        let next = self.replies.next_line();
        let replied = match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, next).await {
                Ok(replied) => replied,
                Err(_) => {
                    self.group.kill();
                    return Err(HookError::TimedOut {
                        hook: hook.to_string(),
                        seconds: limit.as_secs(),
                        tail: self.tail(hook).await,
                    });
                }
            },
            None => next.await,
        };
        let line = match replied {
            Ok(Some(line)) => line,
            _ => {
                return Err(HookError::Crashed {
                    hook: hook.to_string(),
                    tail: self.tail(hook).await,
                })
            }
        };
        let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(error) = reply.get("error") {
            let field = |name: &str| {
                error
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            return Ok(Err((field("kind"), field("message"))));
        }
        Ok(Ok(reply.get("ok").cloned().unwrap_or(Value::Null)))
    }

    /// The last lines of the backend's output, and where all of it is kept, for an error
    /// about `hook`.
    async fn tail(&mut self, hook: &str) -> String {
        // Let the output reader catch up with what the runner flushed before replying: at
        // most a pipe's worth, or all of it when the runner has ended.
        if !self.reader.is_finished() {
            let _ = tokio::time::timeout(Duration::from_millis(200), &mut self.reader).await;
        }
        let mut output = self.output.lock().expect("output lock");
        let lines: Vec<&str> = output.tail.iter().map(String::as_str).collect();
        let mut text = tail(&lines.join("\n"), TAIL_LINES);
        if let Some(log) = output.keep_log(hook) {
            text.push_str(&format!(
                "\n  the backend's whole output is in `{}`",
                log.display()
            ));
        }
        text
    }
}

/// Read the backend's output as it comes: every line into the log, each line to `tracing`
/// and into the bounded tail, secrets masked in all three (a backend may print its
/// environment, and the log outlives the run).
async fn read_output(
    stderr: tokio::process::ChildStderr,
    log: Option<std::fs::File>,
    output: Arc<Mutex<Output>>,
) {
    // Written as read (a few kilobytes at a time, into the page cache): the log is complete
    // whenever an error names it, even if gradient ends right after.
    let mut log = log;
    let mut reader = BufReader::new(stderr);
    let mut line: Vec<u8> = Vec::new();
    // The log's current line, whole (up to LOG_LINE_BYTES, then written in pieces).
    let mut log_line: Vec<u8> = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let mut finished = Vec::new();
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            log_line.extend_from_slice(piece);
            if piece.ends_with(b"\n") || log_line.len() >= LOG_LINE_BYTES {
                write_log_line(&mut log, &log_line);
                log_line.clear();
            }
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&text[..text.len().min(room)]);
            if ends {
                finished.push(String::from_utf8_lossy(&line).into_owned());
                line.clear();
            }
        }
        let used = chunk.len();
        reader.consume(used);
        if !finished.is_empty() {
            let mut kept = output.lock().expect("output lock");
            for text in finished {
                let text = gradient_core::redact(&text).into_owned();
                tracing::info!(target: "gradient::backend", "{text}");
                kept.push(text);
            }
        }
    }
    write_log_line(&mut log, &log_line);
    if !line.is_empty() {
        let text = String::from_utf8_lossy(&line);
        output
            .lock()
            .expect("output lock")
            .push(gradient_core::redact(&text).into_owned());
    }
}

/// How much of one line the log holds before writing it out unfinished.
const LOG_LINE_BYTES: usize = 64 * 1024;

/// Append `line` to the log, secrets masked; a log that cannot be written is given up.
fn write_log_line(log: &mut Option<std::fs::File>, line: &[u8]) {
    if line.is_empty() {
        return;
    }
    if let Some(writer) = log {
        let text = String::from_utf8_lossy(line);
        if std::io::Write::write_all(writer, gradient_core::redact(&text).as_bytes()).is_err() {
            *log = None;
        }
    }
}
