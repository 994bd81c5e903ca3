//! Debian's CPython for arm64, assembled for real from the host's Debian mirror and run
//! under qemu-user. Skipped (with a message) on a host without apt-get or without qemu's
//! aarch64 handler in binfmt_misc; failed instead under `GRADIENT_REQUIRE_CROSS=1`.

use gradient_python::integrity;
use gradient_python::target_python::{debian_python_root, TargetPythonError};
use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

#[path = "support/cross.rs"]
mod cross;
use cross::can_run_debian_arm64 as can_run;

fn size_of(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn debian_arm64_python_is_assembled_runs_under_qemu_is_reused_and_rebuilt_when_damaged() {
    if !can_run() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let heard = RefCell::new(Vec::<String>::new());
    let progress = |message: &str| heard.borrow_mut().push(message.to_string());

    let started = Instant::now();
    let python = debian_python_root("arm64", "3.11", cache.path(), &progress).unwrap();
    let first = started.elapsed();
    assert!(!python.reused);
    assert!(python.is_foreign() || std::env::consts::ARCH == "aarch64");
    assert_eq!(python.executable, python.root.join("usr/bin/python3.11"));
    assert!(python.root.join("lib/ld-linux-aarch64.so.1").exists());
    assert_eq!(
        std::fs::read_link(python.root.join("lib")).unwrap(),
        Path::new("usr/lib")
    );
    let names: Vec<&str> = python.packages.iter().map(|(n, _, _)| n.as_str()).collect();
    for needed in [
        "python3.11-minimal",
        "libpython3.11-minimal",
        "libpython3.11-stdlib",
        "libc6",
        "libssl3",
        "libsqlite3-0",
        "libffi8",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    for (name, version, sha256) in &python.packages {
        assert!(!version.is_empty(), "{name} has no version");
        assert!(
            sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: {sha256}"
        );
    }
    assert!(
        heard.borrow().iter().any(|m| m.starts_with("downloading")),
        "{:?}",
        heard.borrow()
    );

    // The interpreter runs under qemu with its own standard library (the root's, not the
    // host's), and the modules that need the closure's libraries import.
    let output = python
        .command()
        .args(["-I", "-c", "import sys, platform, ssl, sqlite3, ctypes, json, zlib, lzma, bz2; print(platform.machine()); print(sys.prefix); print(ssl.OPENSSL_VERSION); print(ctypes.CDLL(None).getpid() > 0)"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "aarch64");
    assert_eq!(Path::new(lines[1]), python.root.join("usr"));
    assert!(lines[2].starts_with("OpenSSL 3"), "{}", lines[2]);
    assert_eq!(lines[3], "True");
    // Running it wrote nothing into the root.
    integrity::forget(&python.root);
    assert_eq!(integrity::check(&python.root), integrity::State::Intact);

    // Reused: no apt run, nothing heard. Checked as a new run would (the seal's files
    // looked at again, not this process's memory of them).
    integrity::forget(&python.root);
    heard.borrow_mut().clear();
    let started = Instant::now();
    let again = debian_python_root("arm64", "3.11", cache.path(), &progress).unwrap();
    let reuse = started.elapsed();
    assert!(again.reused);
    assert!(heard.borrow().is_empty(), "{:?}", heard.borrow());
    assert_eq!(again.packages, python.packages);

    // A flipped byte in a file the seal names: the next run (forgetting this one's
    // check, as a new process would) makes the root again.
    let damaged = python.root.join("usr/lib/python3.11/json/__init__.py");
    let original = std::fs::read(&damaged).unwrap();
    let mut bytes = original.clone();
    bytes[100] ^= 0x20;
    std::fs::write(&damaged, &bytes).unwrap();
    integrity::forget(&python.root);
    heard.borrow_mut().clear();
    let rebuilt = debian_python_root("arm64", "3.11", cache.path(), &progress).unwrap();
    assert!(!rebuilt.reused);
    assert!(
        heard
            .borrow()
            .iter()
            .any(|m| m.contains("json/__init__.py") && m.contains("making it again")),
        "{:?}",
        heard.borrow()
    );
    assert_eq!(std::fs::read(&damaged).unwrap(), original);

    // A version the suite lacks: the error lists what it has.
    let error = debian_python_root("arm64", "3.99", cache.path(), &|_| {}).unwrap_err();
    assert!(
        matches!(error, TargetPythonError::UnknownVersion { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("3.99"), "{error}");
    assert!(error.to_string().contains("3.11"), "{error}");

    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("debian-python"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    eprintln!(
        "first build {:.1}s, reuse {:.3}s, root {:.1} MB, {} packages, {error}",
        first.as_secs_f64(),
        reuse.as_secs_f64(),
        size_of(&python.root) as f64 / 1e6,
        python.packages.len()
    );
}

#[test]
fn an_unknown_architecture_or_version_form_is_refused_with_the_supported_ones() {
    let cache = tempfile::tempdir().unwrap();
    let error = debian_python_root("sparc64", "3.11", cache.path(), &|_| {}).unwrap_err();
    assert!(matches!(error, TargetPythonError::UnknownArch { .. }));
    let message = error.to_string();
    assert!(
        message.contains("sparc64") && message.contains("arm64") && message.contains("amd64"),
        "{message}"
    );
    assert!(gradient_core::Hint::hint(&error).is_some());
    for bad in ["3", "3.x", "2.7", "3.11; rm -rf /", ""] {
        let error = debian_python_root("arm64", bad, cache.path(), &|_| {}).unwrap_err();
        assert!(
            matches!(error, TargetPythonError::InvalidVersion { .. }),
            "{bad}: {error}"
        );
    }
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
