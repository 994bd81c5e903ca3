//! A run that is stopped from outside (SIGTERM, SIGKILL), a backend hook that hangs, and a
//! backend that prints without end: what is left running, on disk and in memory.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Folders of one test's own: a cache, a temporary folder and an output folder, so that
/// whatever a run leaves can be listed without other tests' runs in the way.
struct Private {
    _dir: tempfile::TempDir,
    cache: PathBuf,
    tmp: PathBuf,
    out: PathBuf,
}

impl Private {
    fn new() -> Private {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        Private {
            cache: dir.path().join("cache"),
            out: dir.path().join("out"),
            tmp,
            _dir: dir,
        }
    }

    fn gradient(&self) -> Command {
        let mut command = gradient();
        command
            .env("GRADIENT_CACHE_DIR", &self.cache)
            .env("TMPDIR", &self.tmp);
        command
    }

    /// What an interrupted run may have left: staging folders and files in the cache
    /// (`.KEY-*`, `.runtime-*`, `.stripping-*`, `.layer-*`, `.storing-*`, `.tmp*`, hook
    /// logs being written, deb data parts, damaged entries put aside), partial
    /// files in the output folder (`.gradient-*`), and work folders in the temporary folder.
    fn debris(&self) -> Vec<PathBuf> {
        let staging = |name: &str| {
            let hex_key = name
                .strip_prefix('.')
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(key, _)| {
                    key.len() >= 16 && key.bytes().all(|b| b.is_ascii_hexdigit())
                });
            hex_key
                || [
                    ".runtime-",
                    ".stripping-",
                    ".layer-",
                    ".storing-",
                    ".tmp",
                    ".gradient-",
                    ".backend-",
                    ".deb-data-",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || name.contains(".discarded-")
        };
        // Not `locks/`: folder locks stay, by design, and are named after folders.
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(&self.cache)
            .max_depth(4)
            .into_iter()
            .filter_entry(|e| e.depth() != 1 || e.file_name() != "locks")
            .flatten()
            .filter(|e| staging(&e.file_name().to_string_lossy()))
            .map(|e| e.path().to_path_buf())
            .collect();
        for name in listing(&self.out) {
            if name.starts_with(".gradient-") {
                found.push(self.out.join(name));
            }
        }
        for name in listing(&self.tmp) {
            if name.starts_with("gradient-") {
                found.push(self.tmp.join(name));
            }
        }
        found
    }

    /// Processes of this test's runs (their environment names its private temporary
    /// folder), with their command lines. Only this user's processes can be read.
    fn processes(&self) -> Vec<String> {
        let marker = format!("TMPDIR={}", self.tmp.display());
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
            {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                found.push(format!("{pid}: {cmdline}"));
            }
        }
        found
    }
}

/// Wait up to `limit` for `done`, polling.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    done()
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The processes whose command line holds `token` (a unique word a test's backend gives its
/// child), by pid.
fn processes_with(token: &str) -> Vec<String> {
    let found = Command::new("pgrep").args(["-f", token]).output().unwrap();
    stdout(&found).lines().map(str::to_string).collect()
}

fn unique_token(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gradient-test-{what}-{}-{nanos}", std::process::id())
}

/// Start `build --to sdist` of the hanging backend; returns once its child sleeps.
fn start_hanging(private: &Private, token: &str, extra: &[&str]) -> Child {
    let started = private.out.with_file_name("started");
    let mut child = private
        .gradient()
        .args(["build", "--to", "sdist"])
        .args(extra)
        .arg(fixture("broken/hanging-backend"))
        .arg("--out")
        .arg(&private.out)
        .env("GRADIENT_TEST_TOKEN", token)
        .env("GRADIENT_TEST_STARTED", &started)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(180), || {
            let ended = child.try_wait().unwrap().is_some();
            ended || (started.exists() && !processes_with(token).is_empty())
        }),
        "the hanging backend never started"
    );
    if child.try_wait().unwrap().is_some() {
        let output = child.wait_with_output().unwrap();
        panic!(
            "gradient ended before its backend started:\n{}",
            stderr(&output)
        );
    }
    child
}

#[test]
fn sigterm_during_a_hanging_hook_stops_every_process_and_leaves_nothing() {
    let private = Private::new();
    let token = unique_token("sigterm");
    let child = start_hanging(&private, &token, &[]);
    assert!(
        !listing(&private.tmp).is_empty(),
        "the build was under way in its work folder"
    );
    let sent = Instant::now();
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&output));
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "it stopped promptly"
    );
    assert_eq!(output.status.code(), Some(143), "128 + SIGTERM");
    assert!(
        stderr(&output).contains("terminated"),
        "{}",
        stderr(&output)
    );
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&token).is_empty()),
        "the hook's child survived: {:?}",
        processes_with(&token)
    );
    assert_eq!(private.processes(), Vec::<String>::new());
    assert_eq!(private.debris(), Vec::<PathBuf>::new());
    assert!(!private.out.exists(), "{:?}", listing(&private.out));
}

#[test]
fn sighup_stops_a_run_like_sigterm_with_its_own_code() {
    // The terminal closed: the same clean stop, exit 129 (128 + SIGHUP), and no panic on a
    // standard error that may be gone.
    let private = Private::new();
    let token = unique_token("sighup");
    let child = start_hanging(&private, &token, &[]);
    signal(&child, "HUP");
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&output));
    assert_eq!(output.status.code(), Some(129), "128 + SIGHUP");
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&token).is_empty()),
        "the hook's child survived: {:?}",
        processes_with(&token)
    );
    assert_eq!(private.debris(), Vec::<PathBuf>::new());
}

#[test]
fn a_hook_that_hangs_is_stopped_after_the_hook_timeout() {
    let private = Private::new();
    let token = unique_token("timeout");
    let child = start_hanging(&private, &token, &["--hook-timeout", "2"]);
    let output = child.wait_with_output().unwrap();
    fails_with(
        &output,
        1,
        &[
            "the build backend's `build_sdist` hook did not finish within 2 seconds",
            "--hook-timeout",
        ],
    );
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&token).is_empty()),
        "the hook's child survived: {:?}",
        processes_with(&token)
    );
    assert_eq!(private.debris(), Vec::<PathBuf>::new());

    // 0 means no limit; a limit that is not a number of seconds is refused.
    let refused = run(private
        .gradient()
        .args(["build", "--to", "sdist", "--hook-timeout", "soon"])
        .arg(fixture("broken/hanging-backend")));
    fails_with(&refused, 2, &["--hook-timeout"]);
}

#[test]
fn a_run_killed_at_any_moment_leaves_nothing_once_the_next_run_has_run() {
    let private = Private::new();
    let project = sample_with("");
    let args = ["build", "--all", "--no-smoke"];
    // Kill the run (SIGKILL: no handler runs) as soon as a staging entry or work folder of a
    // kind not seen before exists, a few times, each run going further on what the
    // previous ones cached.
    let mut killed_at: Vec<String> = Vec::new();
    for _ in 0..6 {
        let mut child = private
            .gradient()
            .args(args)
            .arg(project.path())
            .arg("--out")
            .arg(&private.out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kind = |path: &Path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let parent = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            format!("{parent}/{}", name.split('-').next().unwrap_or(&name))
        };
        let mut new_kind = None;
        let finished = !wait_for(Duration::from_secs(600), || {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            let debris = private.debris();
            new_kind = debris.into_iter().find(|p| !killed_at.contains(&kind(p)));
            new_kind.is_some()
        }) || new_kind.is_none();
        if finished {
            assert!(
                child.wait().unwrap().success(),
                "a run finished, and failed"
            );
            break;
        }
        let at = kind(new_kind.as_ref().unwrap());
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("killed while `{at}` existed");
        killed_at.push(at);
        // Whatever the killed run had started ends with it.
        assert!(
            wait_for(Duration::from_secs(30), || private.processes().is_empty()),
            "processes of the killed run live on: {:?}",
            private.processes()
        );
    }
    assert!(
        killed_at.len() >= 3,
        "killed at too few moments: {killed_at:?}"
    );

    let output = run(private
        .gradient()
        .args(args)
        .arg(project.path())
        .arg("--out")
        .arg(&private.out));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(private.debris(), Vec::<PathBuf>::new());
    assert_eq!(listing(&private.tmp), Vec::<String>::new());
}

#[test]
fn a_backend_that_prints_millions_of_lines_is_held_in_bounded_memory() {
    let private = Private::new();
    let mut child = private
        .gradient()
        .args(["build", "--to", "sdist"])
        .arg(fixture("broken/noisy-backend"))
        .arg("--out")
        .arg(&private.out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    eprintln!("{}\npeak resident memory: {peak_kib} KiB", stderr(&output));
    fails_with(
        &output,
        1,
        &[
            "the noisy sample backend failed after 2000000 lines",
            "noisy backend line 2000000 of 2000000",
        ],
    );
    assert!(peak_kib > 0, "the peak was read");
    assert!(
        peak_kib < 100 * 1024,
        "gradient's peak resident memory was {peak_kib} KiB"
    );
    // The error names the log, which holds every line.
    let text = stderr(&output);
    let log = text
        .lines()
        .find_map(|l| l.split_once("the backend's whole output is in `"))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(path, _)| PathBuf::from(path))
        .unwrap_or_else(|| panic!("no log file named in:\n{text}"));
    assert!(
        log.starts_with(private.cache.join("logs")),
        "{}",
        log.display()
    );
    let kept = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        kept.lines()
            .filter(|l| l.starts_with("noisy backend line "))
            .count(),
        2_000_000
    );
    assert!(kept.contains("noisy backend line 1 of 2000000\n"));
    assert!(kept.contains("RuntimeError: the noisy sample backend failed"));
    assert_eq!(private.debris(), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_during_a_smoke_test_ends_the_apps_own_children_too() {
    // The smoke command starts a child of its own and sleeps: killing only the command left
    // the child running after gradient ended.
    let private = Private::new();
    let token = unique_token("smoke");
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("system-app"), project.path());
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let start = text.find("[tool.gradient.smoke]").unwrap();
    std::fs::write(
        &pyproject,
        format!(
            "{}[tool.gradient.smoke]\ncommand = [\"sysapp\", \"linger\", \"{token}\"]\n",
            &text[..start]
        ),
    )
    .unwrap();
    let child = private
        .gradient()
        .args(["build", "--to", "wheel"])
        .arg(project.path())
        .arg("--out")
        .arg(&private.out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(120), || processes_with(&token).len()
            >= 2),
        "the smoke command and its child started"
    );
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&output));
    assert_eq!(output.status.code(), Some(143), "128 + SIGTERM");
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&token).is_empty()),
        "the app's processes survived: {:?}",
        processes_with(&token)
    );
}

#[test]
fn a_compare_killed_mid_run_leaves_its_cold_cache_for_the_next_run_to_sweep() {
    // `compare --cold` runs on a private cache in the temporary folder; killed, it cannot
    // remove it, and the next run does.
    let private = Private::new();
    let mut child = private
        .gradient()
        .args(["compare", "--cold", "--no-smoke", "--to", "wheel"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&private.out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cold = || {
        listing(&private.tmp)
            .into_iter()
            .any(|name| name.starts_with("gradient-cold-cache-"))
    };
    assert!(
        wait_for(Duration::from_secs(60), cold),
        "the cold cache was made"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cold(), "SIGKILL left it");
    let next = run(private
        .gradient()
        .args(["build", "--to", "wheel", "--no-smoke"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&private.out));
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(private.debris(), Vec::<PathBuf>::new());
}
