//! Running an artifact the way a target would, and judging what it did.

use gradient_core::reference::Reference;
use gradient_core::{SmokeCheck, Startup};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// How long one smoke command may run.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// One command a smoke test runs, and what it must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmokeCommand {
    /// Its first word a script of the app.
    pub argv: Vec<String>,
    pub expect: Expect,
}

/// What a smoke command must do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// A substring of its standard output (of the answer's body, for a server).
    pub output: Option<String>,
    /// Its exit code.
    pub exit: i32,
    /// The exit code is what the same command ends with in the reference venv.
    pub exit_from_reference: bool,
    /// Written to its standard input.
    pub stdin: Option<String>,
    /// A server: asked for `path` on 127.0.0.1:`port` while it runs, then stopped.
    pub http: Option<Http>,
}

/// The HTTP request a server's smoke check makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    pub port: u16,
    pub path: String,
}

impl Expect {
    /// Exit 0 and print `output` (when given).
    pub fn output(output: Option<&str>) -> Expect {
        Expect {
            output: output.map(str::to_string),
            ..Expect::default()
        }
    }
}

/// Run `command` (shown to users as `shown`) and check that it does what `expect` says: its
/// exit code, its output. A server (`expect.http`) is asked instead, then stopped.
pub async fn run_check(shown: String, mut command: Command, expect: &Expect) -> SmokeCheck {
    if let Some(http) = &expect.http {
        return serve_check(shown, command, expect, http).await;
    }
    let started = Instant::now();
    // Killed whole on a timeout or when the run stops: an app's own children (a server's
    // workers, a process pool) must not outlive the check.
    let input = expect.stdin.as_deref().map(str::as_bytes);
    let result = output_within_timeout(&mut command, input).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = |exit_code, detail: String| SmokeCheck {
        command: shown.clone(),
        passed: false,
        exit_code,
        seconds,
        detail,
    };
    let output = match result {
        Err(why) => return failed(None, why),
        Ok(output) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let excerpt = || crate::process::tail(&format!("{stdout}{stderr}"), 12);
    if code != Some(expect.exit) {
        let wanted = if expect.exit_from_reference {
            ", as it does in the reference venv"
        } else {
            ""
        };
        return failed(
            code,
            format!(
                "exited with {}, expected exit code {}{wanted}\n{}",
                output.status,
                expect.exit,
                excerpt()
            ),
        );
    }
    if let Some(expected) = &expect.output {
        if !stdout.contains(expected.as_str()) {
            return failed(
                code,
                format!("expected `{expected}` in its output, got:\n{}", excerpt()),
            );
        }
    }
    let mut detail = match &expect.output {
        Some(expected) => format!("printed `{expected}`"),
        None => format!("exited {}", expect.exit),
    };
    if expect.exit_from_reference {
        detail.push_str(", as in the reference venv");
    }
    SmokeCheck {
        command: shown,
        passed: true,
        exit_code: code,
        seconds,
        detail,
    }
}

/// Run `command` to its end in a group of its own, `input` on its standard input, for at
/// most [`SMOKE_TIMEOUT`]: its output, or why there is none (`did not finish within …`,
/// `could not be started: …`).
pub async fn output_within_timeout(
    command: &mut Command,
    input: Option<&[u8]>,
) -> Result<std::process::Output, String> {
    let output = crate::ProcessGroup::output_with_input(command, input);
    match tokio::time::timeout(SMOKE_TIMEOUT, output).await {
        Err(_) => Err(format!(
            "did not finish within {}s",
            SMOKE_TIMEOUT.as_secs()
        )),
        Ok(Err(err)) => Err(format!("could not be started: {err}")),
        Ok(Ok(output)) => Ok(output),
    }
}

/// How long a server may take to answer its first request.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Start a server in the background, ask it for `http.path` until it answers (or exits, or
/// [`SERVE_TIMEOUT`] passes), then stop it. Passed when the answer is a success whose body
/// holds `expect.output`.
async fn serve_check(
    shown: String,
    mut command: Command,
    expect: &Expect,
    http: &Http,
) -> SmokeCheck {
    let started = Instant::now();
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut group = match crate::ProcessGroup::spawn(&mut command) {
        Ok(group) => group,
        Err(err) => {
            return SmokeCheck {
                command: shown,
                passed: false,
                exit_code: None,
                seconds: 0.0,
                detail: format!("could not be started: {err}"),
            }
        }
    };
    // Read as it comes (a task of its own), so that a chatty server never blocks on a full
    // pipe while it is asked.
    let output = tokio::spawn(collect_output(&mut group));
    let mut ended =
        || std::future::ready(group.child.try_wait().ok().flatten().map(|s| s.to_string()));
    let mut answer = ask_until_ended(http, &mut ended).await;
    // An answer from a server that has ended came from something else on the port.
    if let (Ok(_), Some(status)) = (&answer, ended().await) {
        answer = Err(format!(
            "the server ended ({status}): what answered on port {} was not this server",
            http.port
        ));
    }
    group.kill();
    let _ = group.child.wait().await;
    // A child that left the group could hold the pipes open: its output is not waited for.
    let reading = output.abort_handle();
    let printed = match tokio::time::timeout(Duration::from_secs(5), output).await {
        Ok(Ok(printed)) => printed,
        _ => {
            reading.abort();
            "(the output was not read to its end)".into()
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let judged = answer.and_then(|(status, body)| judge_answer(status, &body, expect));
    SmokeCheck {
        command: shown,
        passed: judged.is_ok(),
        exit_code: None,
        seconds,
        detail: match judged {
            Ok(detail) => detail,
            Err(why) => format!("{why}\n{}", crate::process::tail(&printed, 12)),
        },
    }
}

/// Read a background child's output to its end (it ends when the child is killed).
fn collect_output(
    group: &mut crate::ProcessGroup,
) -> impl std::future::Future<Output = String> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let (stdout, stderr) = (group.child.stdout.take(), group.child.stderr.take());
    async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(mut pipe) = stdout {
                let _ = pipe.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(mut pipe) = stderr {
                let _ = pipe.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    }
}

/// Ask `http` until it answers; `ended` says why the server has ended, when it has (it
/// never will answer then). The answer's status code and body.
pub async fn ask_until_ended<F: std::future::Future<Output = Option<String>>>(
    http: &Http,
    mut ended: impl FnMut() -> F,
) -> Result<(u16, String), String> {
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        if let Some(status) = ended().await {
            return Err(format!(
                "the server ended ({status}) before it answered http://127.0.0.1:{}{}",
                http.port, http.path
            ));
        }
        if let Ok(answer) = get(http).await {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no answer on http://127.0.0.1:{}{} within {}s",
                http.port,
                http.path,
                SERVE_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a server's answer is what the check expects; the check's note if so.
pub fn judge_answer(status: u16, body: &str, expect: &Expect) -> Result<String, String> {
    if !(200..300).contains(&status) {
        return Err(format!(
            "answered HTTP {status}:\n{}",
            crate::process::tail(body, 8)
        ));
    }
    match &expect.output {
        Some(expected) if !body.contains(expected.as_str()) => Err(format!(
            "answered HTTP {status} without `{expected}` in its body:\n{}",
            crate::process::tail(body, 8)
        )),
        Some(expected) => Ok(format!("answered HTTP {status} with `{expected}`")),
        None => Ok(format!("answered HTTP {status}")),
    }
}

/// One `GET` over HTTP/1.0 on 127.0.0.1: the status code and the body.
async fn get(http: &Http) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http.port)).await?;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            http.path, http.port
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(16 << 20).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not HTTP"))?;
    Ok((status, body.to_string()))
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Run a probe program's command: its standard output when it exits 0.
pub async fn run_probe(shown: String, mut command: Command) -> gradient_core::ProbeOutput {
    let stdout = match output_within_timeout(&mut command, None).await {
        Err(why) => Err(why),
        Ok(output) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => Err(format!(
            "exited with {}\n{}",
            output.status,
            crate::process::tail(&String::from_utf8_lossy(&output.stderr), 12)
        )),
    };
    gradient_core::ProbeOutput {
        command: shown,
        stdout,
    }
}

/// Run `argv` twice in a row, each built by `make`: the first run (the caller points the
/// artifact's caches at an empty folder) and the warm one. Both must pass as smoke checks.
pub async fn measure_startup(
    argv: &[String],
    make: impl Fn() -> Command,
    expect: &Expect,
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

impl gradient_core::Hint for StartupFailed {}

/// The command start-up is measured by: `[tool.gradient.smoke]`'s (unless it is a server),
/// else the main script's `--help` (the one `entry` names, else the one named like the
/// project, else the first of `scripts`), so that every tier times the same command.
pub fn startup_command<'a>(
    project: &gradient_core::Project,
    reference: Option<&Reference>,
    scripts: impl IntoIterator<Item = &'a String>,
) -> Option<SmokeCommand> {
    let scripts: Vec<&String> = scripts.into_iter().collect();
    if let Some(smoke) = project.config.smoke.as_ref().filter(|s| s.http.is_none()) {
        return Some(configured(smoke, 0));
    }
    let named = project.name.as_deref().map(gradient_core::normalize_name);
    let main = scripts
        .iter()
        .find(|s| project.config.entry.as_deref() == Some(s.as_str()))
        .or_else(|| {
            scripts
                .iter()
                .find(|s| Some(gradient_core::normalize_name(s)) == named)
        })
        .or(scripts.first())?;
    Some(help(main, reference))
}

/// The commands a smoke test runs: `[tool.gradient.smoke]` when the project has it, else
/// every console script with `--help`, which must end as it ends in the reference venv
/// (with 0 when there is none).
pub fn smoke_commands<'a>(
    project: &gradient_core::Project,
    reference: Option<&Reference>,
    scripts: impl IntoIterator<Item = &'a String>,
) -> Vec<SmokeCommand> {
    match &project.config.smoke {
        Some(smoke) => {
            // A server's port: a free one of 127.0.0.1 (0 when none could be found, which
            // the server cannot listen on: its check then fails and says so).
            let port = if smoke.http.is_some() {
                free_port().unwrap_or(0)
            } else {
                0
            };
            vec![configured(smoke, port)]
        }
        None => scripts
            .into_iter()
            .map(|script| help(script, reference))
            .collect(),
    }
}

/// `[tool.gradient.smoke]`'s command, `{port}` replaced by `port`.
fn configured(smoke: &gradient_core::SmokeConfig, port: u16) -> SmokeCommand {
    let argv = smoke
        .command
        .iter()
        .map(|word| word.replace(gradient_core::PORT_PLACEHOLDER, &port.to_string()))
        .collect();
    SmokeCommand {
        argv,
        expect: Expect {
            output: smoke.expect.clone(),
            exit: smoke.expect_exit.unwrap_or(0),
            exit_from_reference: false,
            stdin: smoke.stdin.clone(),
            http: smoke.http.as_ref().map(|path| Http {
                port,
                path: path.clone(),
            }),
        },
    }
}

/// `SCRIPT --help`, ending as in the reference venv.
fn help(script: &str, reference: Option<&Reference>) -> SmokeCommand {
    let exit = reference.and_then(|r| r.help_exit.get(script).copied());
    SmokeCommand {
        argv: vec![script.to_string(), "--help".to_string()],
        expect: Expect {
            exit: exit.unwrap_or(0),
            exit_from_reference: exit.is_some(),
            ..Expect::default()
        },
    }
}

/// Two runs at once: both must pass. Reported as one check.
pub async fn concurrent_runs(
    shown: String,
    make: impl Fn() -> Command,
    expect: &Expect,
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
    expect: &Expect,
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
