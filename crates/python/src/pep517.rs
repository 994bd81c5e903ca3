//! The PEP 517 frontend's hook runner: one Python process that imports the backend once and
//! serves every hook call (`get_requires_for_build_*`, `build_sdist`, `build_wheel`) of a
//! build, instead of one process per hook; that is most of why gradient's builds are faster
//! than other frontends'. It can move to another source tree (the unpacked sdist) with
//! [`HookRunner::chdir`]; callers start a new runner instead when the backend lives in the
//! tree (`backend-path`), so that each tree is built by its own copy of the backend.

use crate::process::{tail, ProcessGroup};
use gradient_core::BuildSystem;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

const RUNNER: &str = include_str!("runner.py");

/// How many lines of backend output an error shows.
const TAIL_LINES: usize = 25;

/// Why a hook call failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("failed to import the build backend `{backend}`: {message}\n{tail}\n  hint: check `build-backend` and `requires` in [build-system] of `{}`", pyproject.display())]
    Unavailable {
        backend: String,
        message: String,
        tail: String,
        pyproject: PathBuf,
    },
    #[error("the build backend's `{hook}` hook failed: {message}\n  last lines of the backend's output:\n{tail}\n  hint: run with -v to see all of it")]
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
    #[error("failed to run the PEP 517 hook runner with `{}`", python.display())]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running hook runner for one build environment and one source tree.
pub struct HookRunner {
    group: ProcessGroup,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    output: Arc<Mutex<Vec<String>>>,
    backend: String,
}

impl HookRunner {
    /// Start the runner in `source_dir` with the environment's `python`, and import the backend.
    pub async fn start(
        python: &Path,
        source_dir: &Path,
        build_system: &BuildSystem,
        extra_env: &[(OsString, OsString)],
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
            .env("PYTHONUNBUFFERED", "1");
        let mut group = ProcessGroup::spawn(&mut command).map_err(|source| HookError::Spawn {
            python: python.to_path_buf(),
            source,
        })?;
        let stdin = group.child.stdin.take().expect("piped stdin");
        let stdout = group.child.stdout.take().expect("piped stdout");
        let stderr = group.child.stderr.take().expect("piped stderr");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "gradient::backend", "{line}");
                sink.lock().expect("output lock").push(line);
            }
        });
        let mut runner = HookRunner {
            group,
            stdin,
            replies: BufReader::new(stdout).lines(),
            output,
            backend: build_system.backend.clone(),
        };
        match runner.read_reply("import").await? {
            Ok(_) => Ok(runner),
            Err((_, message)) => Err(HookError::Unavailable {
                backend: build_system.backend.clone(),
                message,
                tail: runner.tail().await,
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
                tail: self.tail().await,
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
                tail: self.tail().await,
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

    /// Everything the backend printed so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("output lock").clone()
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
        let line = match self.replies.next_line().await {
            Ok(Some(line)) => line,
            _ => {
                return Err(HookError::Crashed {
                    hook: hook.to_string(),
                    tail: self.tail().await,
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

    async fn tail(&self) -> String {
        // Let the output reader catch up with what the runner flushed before replying.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tail(&self.output().join("\n"), TAIL_LINES)
    }
}
