//! The runtime bundle for another machine, made for real: Debian's arm64 CPython 3.11
//! assembled from the host's Debian mirror, bundled, byte-compiled under qemu-user, and run
//! from a fresh folder under qemu with nothing but the arm64 glibc beside it. Skipped (with
//! a message) on a host without apt-get or without qemu's aarch64 handler in binfmt_misc;
//! failed instead under `GRADIENT_REQUIRE_CROSS=1`.
//!
//! `GRADIENT_TEST_DEBIAN_CACHE` may name a cache folder that keeps the Debian root between
//! runs (the bundles are always made in a fresh one).

use gradient_python::runtime::{
    build_foreign_runtime, build_runtime, build_runtime_in, RuntimeError, StdlibChoice, Sysroot,
};
use gradient_python::target_python::debian_python_root;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const EM_AARCH64: u16 = 183;

#[path = "support/cross.rs"]
mod cross;
use cross::can_run_debian_arm64 as can_run;

/// Every regular file under `root`, relative path → sha256.
fn digests(root: &Path) -> BTreeMap<PathBuf, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                hex::encode(Sha256::digest(&bytes)),
            )
        })
        .collect()
}

fn size_of(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The ELF machine of `path`, when it is an ELF file.
fn elf_machine(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() > 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

fn copy_tree(from: &Path, into: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_arm64_bundle_is_made_from_debian_runs_with_only_glibc_beside_it_and_is_reproducible() {
    if !can_run() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let debian_cache = std::env::var_os("GRADIENT_TEST_DEBIAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().join("debian"));
    let target = debian_python_root("arm64", "3.11", &debian_cache, &|_| {}).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let stdlib = StdlibChoice::of(&gradient_core::RuntimeConfig::default());

    let started = Instant::now();
    let runtime = build_foreign_runtime(&target, &stdlib, true, cache.path())
        .await
        .unwrap();
    let first = started.elapsed();
    assert!(!runtime.reused);
    assert!(runtime.missing.is_empty(), "{:?}", runtime.missing);
    assert_eq!(runtime.python, "bin/python3.11");
    for library in [
        "libssl.so.3",
        "libcrypto.so.3",
        "libsqlite3.so.0",
        "libffi.so.8",
    ] {
        assert!(
            runtime.libraries.iter().any(|l| l == library),
            "{library} not bundled: {:?}",
            runtime.libraries
        );
    }
    for glibc in ["libc.so.6", "libm.so.6", "ld-linux-aarch64.so.1"] {
        assert!(
            !runtime.libraries.iter().any(|l| l == glibc),
            "{glibc} bundled"
        );
        assert!(
            !runtime.dir.join("lib").join(glibc).exists(),
            "{glibc} bundled"
        );
    }
    // Every library came from the root, none from the host.
    for (source, _) in &runtime.sources {
        assert!(source.starts_with(&target.root), "{}", source.display());
    }
    // Every object is for aarch64.
    let mut objects = 0;
    for entry in walkdir::WalkDir::new(&runtime.dir).into_iter().flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        if let Some(machine) = elf_machine(entry.path()) {
            objects += 1;
            assert_eq!(machine, EM_AARCH64, "{}", entry.path().display());
        }
    }
    assert!(objects > 40, "only {objects} ELF objects");

    // Reused: the same bundle, checked against its seal.
    gradient_python::integrity::forget(runtime.dir.parent().unwrap());
    let started = Instant::now();
    let again = build_foreign_runtime(&target, &stdlib, true, cache.path())
        .await
        .unwrap();
    let reuse = started.elapsed();
    assert!(again.reused);
    assert_eq!(again.dir, runtime.dir);

    // Moved to a fresh folder, and run with a loader prefix that holds the arm64 glibc
    // alone: what a bare arm64 machine with a C library has.
    let before = digests(&runtime.dir);
    let moved = tempfile::tempdir().unwrap();
    copy_tree(&runtime.dir, moved.path());
    let bundle = moved.path().join("bundle");
    let glibc_only = target.loader_prefix().unwrap();
    assert_eq!(
        target.loader_prefix().unwrap(),
        glibc_only,
        "made once, then found"
    );
    assert_eq!(target.glibc_version().as_deref(), Some("2.36"));
    let probe = "import sys, platform, ssl, sqlite3, ctypes, json, zlib, _ssl, _sqlite3\n\
                 print(platform.machine())\n\
                 print(sys.prefix)\n\
                 print(ssl.__file__)\n\
                 print(_ssl.__file__)\n\
                 print(_sqlite3.__file__)\n\
                 print(ssl.OPENSSL_VERSION)\n\
                 maps = open('/proc/self/maps').read().split()\n\
                 print('\\n'.join(sorted({p for p in maps if '.so' in p})))";
    let output = std::process::Command::new(bundle.join("bin/python3.11"))
        .args(["-I", "-c", probe])
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("QEMU_LD_PREFIX", glibc_only.as_path())
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
    assert_eq!(Path::new(lines[1]), bundle);
    assert_eq!(
        Path::new(lines[2]),
        bundle.join("lib/python311.zip/ssl.pyc")
    );
    for module in [lines[3], lines[4]] {
        assert!(
            Path::new(module).starts_with(bundle.join("lib/python3.11/lib-dynload")),
            "{module}"
        );
    }
    assert!(lines[5].starts_with("OpenSSL 3"), "{}", lines[5]);
    let mut from_bundle = 0;
    for library in &lines[6..] {
        let path = Path::new(library);
        if path.starts_with(&bundle) {
            from_bundle += 1;
        } else {
            assert!(
                path.starts_with(glibc_only.as_path()),
                "loaded from outside the bundle and the glibc folder: {library}"
            );
        }
    }
    assert!(
        lines[6..].iter().any(|l| l.ends_with("/lib/libssl.so.3")),
        "{stdout}"
    );
    assert!(from_bundle >= 4, "{stdout}");

    // Reproducible: made again from the same inputs, every file has the same bytes.
    std::fs::remove_dir_all(runtime.dir.parent().unwrap()).unwrap();
    let remade = build_foreign_runtime(&target, &stdlib, true, cache.path())
        .await
        .unwrap();
    assert!(!remade.reused);
    let after = digests(&remade.dir);
    let differing: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(differing.is_empty(), "differ between builds: {differing:?}");

    // Beside the host's bundle of the same version, for the figures.
    let host_size = match gradient_python::find_interpreter(
        &gradient_python::PythonRequest::Path("/usr/bin/python3.11".into()),
        cache.path(),
    )
    .await
    {
        Ok(host) => {
            let host = build_runtime(&host, &stdlib, false, cache.path())
                .await
                .unwrap();
            format!("{:.1} MB", size_of(&host.dir) as f64 / 1e6)
        }
        Err(_) => "n/a (no /usr/bin/python3.11)".into(),
    };
    eprintln!(
        "arm64 bundle: first build {:.1}s, reuse {:.3}s, {:.1} MB, {} libraries, {objects} ELF objects; host (Debian 3.11) bundle {host_size}",
        first.as_secs_f64(),
        reuse.as_secs_f64(),
        size_of(&runtime.dir.parent().unwrap().join("bundle")) as f64 / 1e6,
        runtime.libraries.len(),
    );
}

/// A root that lacks a library the host has: the name stays missing (never taken from the
/// host). An x86_64 module in the arm64 root: refused, by its path.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_bundle_takes_nothing_from_the_host_and_refuses_another_machines_object() {
    if !can_run() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let debian_cache = std::env::var_os("GRADIENT_TEST_DEBIAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().join("debian"));
    let target = debian_python_root("arm64", "3.11", &debian_cache, &|_| {}).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let facts = gradient_python::interpreter::foreign_interpreter(&target, cache.path())
        .await
        .unwrap();
    assert_eq!(facts.executable, target.executable);
    assert_eq!(facts.base_prefix, target.root.join("usr"));
    assert_eq!(facts.platform_tag, "linux_aarch64");
    assert_eq!((facts.version.0, facts.version.1), (3, 11));

    // A root with the interpreter and a landmark only: no libz, no libexpat in it.
    let root = tempfile::tempdir().unwrap();
    let stdlib = root.path().join("usr/lib/python3.11");
    let dynload = stdlib.join("lib-dynload");
    std::fs::create_dir_all(&dynload).unwrap();
    std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    std::fs::write(stdlib.join("os.py"), "").unwrap();
    let executable = root.path().join("usr/bin/python3.11");
    std::fs::copy(&target.executable, &executable).unwrap();
    let bare = gradient_python::target_python::DebianPython {
        root: root.path().to_path_buf(),
        executable: executable.clone(),
        ..target.clone()
    };
    let fake = gradient_core::InterpreterFacts {
        executable,
        base_prefix: root.path().join("usr"),
        ..facts
    };
    let choice = StdlibChoice {
        exclude: Vec::new(),
        sources: false,
    };
    let sysroot = Sysroot::of(&bare);
    let error = build_runtime_in(&fake, &sysroot, &choice, true, cache.path())
        .await
        .unwrap_err();
    let host_has = Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1").exists()
        || Path::new("/lib/x86_64-linux-gnu/libz.so.1").exists();
    assert!(
        host_has,
        "the host has libz, so a host lookup would find it"
    );
    match &error {
        RuntimeError::MissingLibrary { library, module } => {
            assert!(
                library == "libz.so.1" || library == "libexpat.so.1",
                "{error}"
            );
            assert_eq!(module, "python3.11");
        }
        other => panic!("expected a missing library, got {other}"),
    }

    // An x86_64 extension module (the host's) among the arm64 root's.
    let host_module = std::fs::read_dir("/usr/lib/python3.11/lib-dynload")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .expect("the host's Python has an extension module");
    let stray = dynload.join(host_module.file_name().unwrap());
    std::fs::copy(&host_module, &stray).unwrap();
    let error = build_runtime_in(&fake, &sysroot, &choice, false, cache.path())
        .await
        .unwrap_err();
    match &error {
        RuntimeError::OtherMachine {
            path,
            found,
            wanted,
        } => {
            assert_eq!(path, &stray);
            assert_eq!((found.as_str(), wanted.as_str()), ("x86_64", "aarch64"));
        }
        other => panic!("expected another machine's object refused, got {other}"),
    }
    assert!(error.to_string().contains(&*stray.to_string_lossy()));
    assert!(gradient_core::Hint::hint(&error).is_some());
}
