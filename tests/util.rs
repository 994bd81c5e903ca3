//! A small harness around the built binary.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A `gradient` command sharing one cache between tests (so build environments are made
/// once per test run), never the user's own cache.
pub fn gradient() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gradient"));
    command
        .env(
            "GRADIENT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("gradient-cache"),
        )
        .env_remove("SOURCE_DATE_EPOCH")
        // A Debian maintainer the developer set for dch must not leak into the tests' debs.
        .env_remove("DEBFULLNAME")
        .env_remove("DEBEMAIL")
        .env_remove("GRADIENT_LOG");
    command
}

/// Run and return the output, printing it so a failing test shows what happened.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("gradient runs");
    eprintln!(
        "--- {:?} exited {}\n--- stdout\n{}\n--- stderr\n{}",
        command,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("file reads")))
}

/// The one file in `dir` whose name ends with `suffix`.
pub fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir reads")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// The names in `dir`, sorted; empty when it does not exist.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The machine's Python (the one `gradient` finds by default).
pub fn host_python() -> String {
    "python3".to_string()
}

/// A tool the tests need that CI installs: missing is a failure in CI, a skip elsewhere.
pub fn require_python_module(module: &str) -> bool {
    let present = Command::new(host_python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide the Python module `{module}` (see .ci/run)"
        );
        eprintln!("skipping: Python module `{module}` is not installed (`pip install {module}`)");
    }
    present
}

/// Copy a fixture to `to`, leaving out build products.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(from).unwrap();
        if relative.components().any(|c| {
            matches!(c.as_os_str().to_str(), Some("dist" | "build"))
                || c.as_os_str().to_string_lossy().ends_with(".egg-info")
        }) {
            continue;
        }
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the sample with `extra` appended to its pyproject.toml.
pub fn sample_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("sampleapp"), dir.path());
    let _ = std::fs::remove_dir_all(dir.path().join("dist"));
    let pyproject = dir.path().join("pyproject.toml");
    let mut text = std::fs::read_to_string(&pyproject).unwrap();
    text.push_str(extra);
    std::fs::write(&pyproject, text).unwrap();
    dir
}

/// The sample with authors that have no email: its deb fails at once, before any work.
pub fn sample_without_maintainer_email() -> tempfile::TempDir {
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace(
            "authors = [{ name = \"Gradient Maintainers\", email = \"maintainers@gradient.invalid\" }]",
            "authors = [{ name = \"Gradient Maintainers\" }]",
        ),
    )
    .unwrap();
    project
}

/// `gradient build PROJECT --out OUT EXTRA...`.
pub fn build(project: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(gradient()
        .args(["build"])
        .arg(project)
        .arg("--out")
        .arg(out)
        .args(extra))
}

/// The command failed with `code` and its stderr says each of `says`.
pub fn fails_with(output: &std::process::Output, code: i32, says: &[&str]) {
    assert_eq!(output.status.code(), Some(code));
    let text = stderr(output);
    for part in says {
        assert!(text.contains(part), "expected `{part}` in:\n{text}");
    }
}

/// Whether `tool` is on PATH; without it a test skips, except in CI or with
/// `GRADIENT_REQUIRE_CHECKERS=1` (which CI sets), where it fails.
pub fn require(tool: &str) -> bool {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
            "CI (and GRADIENT_REQUIRE_CHECKERS=1) must provide `{tool}` (see .ci/run)"
        );
        eprintln!("skipping: `{tool}` is not installed");
    }
    present
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Where pyenv keeps its interpreters: `$PYENV_ROOT`, else `~/.pyenv`.
pub fn pyenv_root() -> PathBuf {
    std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".pyenv"))
}

/// Whether a Docker engine answers; panics when one is required and none does.
pub fn docker_engine() -> bool {
    let answers = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers && std::env::var("GRADIENT_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("GRADIENT_REQUIRE_DOCKER=1 but no Docker engine answers (`docker version` fails)");
    }
    if !answers {
        eprintln!(
            "skipped: no Docker engine answers (set GRADIENT_REQUIRE_DOCKER=1 to fail instead)"
        );
    }
    answers
}

/// Whether this process may chroot (root) and make a Debian root (mmdebstrap): a test
/// that installs into a clean root needs both; missing is a failure in CI, a skip elsewhere.
pub fn can_chroot() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the install tests as root"
        );
        eprintln!("skipping: installing into a chroot needs root");
    }
    root && require("mmdebstrap")
}

static DEBIAN_ROOT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A clean Debian root with python3 and adduser, as a tarball made once with mmdebstrap
/// (kept in the target folder between test runs).
pub fn debian_root_tarball() -> PathBuf {
    let _one_at_a_time = DEBIAN_ROOT.lock().unwrap_or_else(|e| e.into_inner());
    let cached = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-bookworm-root.tar");
    if !cached.exists() {
        // mmdebstrap writes a tarball because of the name's `.tar`.
        let partial = cached.with_extension("partial.tar");
        let sources = std::fs::File::open("/etc/apt/sources.list.d/debian.sources")
            .or_else(|_| std::fs::File::open("/etc/apt/sources.list"))
            .expect("this machine's Debian sources, to make a clean root from");
        let output = run(Command::new("mmdebstrap")
            .args([
                "--quiet",
                "--variant=minbase",
                "--include=python3,adduser",
                "bookworm",
            ])
            .arg(&partial)
            .arg("-")
            .stdin(sources));
        assert!(output.status.success(), "mmdebstrap made the Debian root");
        std::fs::rename(&partial, &cached).unwrap();
    }
    cached
}

/// A fresh copy of the clean Debian root in `dir`.
pub fn fresh_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let output = run(Command::new("tar")
        .arg("-xf")
        .arg(debian_root_tarball())
        .arg("-C")
        .arg(&root));
    assert!(output.status.success());
    root
}

/// `chroot ROOT ARGS` with the root's own /proc mounted, as on a booted system (the
/// loader finds `$ORIGIN` through /proc/self/exe).
pub fn chroot(root: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new("unshare")
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8"))
}

/// Whether this machine runs linux/arm64 programs (qemu-user through binfmt_misc) and can
/// fetch Debian's arm64 packages (apt-get): what a build for linux/arm64 needs here. Missing
/// is a failure with `GRADIENT_REQUIRE_CROSS=1` (as `.ci/run` sets it), a skip elsewhere.
pub fn can_build_arm64() -> bool {
    // The question a build itself asks (registered, enabled, with the F flag).
    let emulated = gradient_core::Platform::LinuxArm64.runnable_here().is_ok();
    let apt = Command::new("sh")
        .args(["-c", "command -v apt-get"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !(emulated && apt) {
        assert!(
            std::env::var("GRADIENT_REQUIRE_CROSS").map_or(true, |v| v != "1"),
            "GRADIENT_REQUIRE_CROSS=1 but qemu-aarch64 is not registered with binfmt_misc or apt-get is missing (see .ci/run)"
        );
        eprintln!("skipping: no qemu-aarch64 under binfmt_misc, or no apt-get");
    }
    emulated && apt
}

/// The ELF machine of a file (`e_machine`: 62 for x86_64, 183 for aarch64), or None when it
/// is no ELF file.
pub fn elf_machine(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() > 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}
