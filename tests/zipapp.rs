//! The zipapp tier: one .pyz that needs only a Python.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn build_zipapp(project: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(gradient()
        .args(["build", "--to", "zipapp"])
        .arg(project)
        .arg("--out")
        .arg(out)
        .args(extra))
}

/// The build interpreter's own executable, from the manifest.
fn python311() -> PathBuf {
    let output = run(Command::new(host_python()).args([
        "-c",
        "import os, sys; print(os.path.realpath(sys.executable))",
    ]));
    PathBuf::from(stdout(&output).trim())
}

/// The interpreter of a fresh venv made from [`python311`] in `dir`: with `-I` it sees none
/// of the host's site-packages (which hold click), so only an archive can supply the app's
/// dependencies.
fn clean_python(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    assert!(run(Command::new(python311())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv))
    .status
    .success());
    venv.join("bin/python")
}

/// A clean environment: no PATH entries but the system's, an empty HOME and cache.
fn clean<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
}

#[test]
fn sampleapp_pyz_runs_on_a_clean_interpreter_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let output = build_zipapp(&fixture("sampleapp"), &first, &[]);
    assert!(output.status.success());
    assert!(
        stdout(&output).contains("ok (4/4)"),
        "all four smoke checks pass, the comparison with the reference venv among them"
    );
    let pyz = only_file(&first, ".pyz");
    assert_eq!(pyz.file_name().unwrap(), "sampleapp-1.2.3.pyz");

    // python3.11 -I: no user site, no PYTHON* variables, and a fresh venv's interpreter.
    let python = clean_python(dir.path());
    let home = dir.path().join("home");
    let greet = run(clean(
        Command::new(&python)
            .arg("-I")
            .arg(&pyz)
            .args(["greet", "X"]),
        &home,
    ));
    assert_eq!(stdout(&greet), "Hello, X!\n");
    let roundtrip = run(clean(
        Command::new(&python)
            .arg("-I")
            .arg(&pyz)
            .args(["roundtrip", "[1, 2]"]),
        &home,
    ));
    assert_eq!(
        stdout(&roundtrip),
        "[1, 2] (3 bytes, compiled)\n",
        "msgpack's C extension loads from the extraction"
    );
    let version = run(clean(
        Command::new(&python).arg("-I").arg(&pyz).arg("--version"),
        &home,
    ));
    assert!(stdout(&version).contains("1.2.3"));
    // The bootstrap is compiled for this interpreter, so zipimport runs its bytecode instead
    // of compiling the source on every start.
    let chosen = run(Command::new(&python).arg("-I").arg("-c").arg(format!(
        "import zipimport; print(zipimport.zipimporter({:?}).get_filename('__main__'))",
        pyz.display().to_string()
    )));
    assert!(
        stdout(&chosen).trim_end().ends_with("__main__.pyc"),
        "{}{}",
        stdout(&chosen),
        stderr(&chosen)
    );

    // Other versions of the dependencies installed in the target interpreter do not shadow
    // the locked ones the archive carries.
    let venv = python.parent().and_then(Path::parent).unwrap();
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    for package in ["click", "msgpack"] {
        std::fs::create_dir_all(site.join(package)).unwrap();
        std::fs::write(
            site.join(package).join("__init__.py"),
            format!("raise ImportError('the target interpreter\\'s own {package} was imported')\n"),
        )
        .unwrap();
    }
    for (args, expected) in [
        (&["greet", "X"][..], "Hello, X!\n"),
        (&["roundtrip", "[1, 2]"][..], "[1, 2] (3 bytes, compiled)\n"),
    ] {
        let output = run(clean(
            Command::new(&python).arg("-I").arg(&pyz).args(args),
            &home,
        ));
        assert_eq!(stdout(&output), expected, "{}", stderr(&output));
    }

    // The lock is published beside it and listed in SHA256SUMS.
    let lock = std::fs::read_to_string(first.join("sampleapp-1.2.3.lock.txt")).unwrap();
    assert!(
        lock.contains("click==") && lock.contains("msgpack==") && lock.contains("--hash=sha256:"),
        "{lock}"
    );
    let sums = run(Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&first));
    // The .pyz, its SBOM and the lock, as hashed requirements and as PEP 751.
    assert_eq!(stdout(&sums).matches(": OK").count(), 4);

    // Same inputs, same bytes; and the second build reuses the published lock without
    // resolving.
    std::fs::create_dir_all(&second).unwrap();
    for lock in ["pylock.sampleapp.toml", "sampleapp-1.2.3.lock.txt"] {
        std::fs::copy(first.join(lock), second.join(lock)).unwrap();
    }
    let again = build_zipapp(&fixture("sampleapp"), &second, &["--no-smoke", "--rebuild"]);
    assert!(stderr(&again).contains("lock reused"), "{}", stderr(&again));
    assert_eq!(sha256_file(&pyz), sha256_file(&only_file(&second, ".pyz")));
}

#[test]
fn another_python_version_gets_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        build_zipapp(&fixture("sampleapp"), dir.path(), &["--no-smoke"])
            .status
            .success()
    );
    let pyz = only_file(dir.path(), ".pyz");
    let other = std::fs::read_dir(pyenv_root().join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("3.1")
                && !p.file_name().unwrap().to_string_lossy().starts_with("3.11")
        })
        .map(|p| p.join("bin/python3"))
        .find(|p| p.exists());
    let Some(other) = other else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI machines carry several pyenv versions"
        );
        eprintln!(
            "skipping: no second Python version under {}",
            pyenv_root().display()
        );
        return;
    };
    let home = dir.path().join("home");
    let output = run(clean(
        Command::new(&other)
            .arg("-I")
            .arg(&pyz)
            .args(["greet", "X"]),
        &home,
    ));
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("this archive was built for cpython 3.11 (cp311, linux_x86_64) and cannot run on cpython 3.1"), "{text}");
    assert!(text.contains("hint: run it with python3.11"), "{text}");
    assert!(!text.contains("ImportError"), "{text}");
}

#[test]
fn twenty_concurrent_first_runs_all_succeed_and_leave_one_extraction() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        build_zipapp(&fixture("sampleapp"), dir.path(), &["--no-smoke"])
            .status
            .success()
    );
    let pyz = only_file(dir.path(), ".pyz");
    let home = dir.path().join("home");
    let python = clean_python(dir.path());
    // Half greet (package data from the archive), half round-trip through msgpack, whose
    // compiled module must come whole from the one extraction (a missing one would fall
    // back to msgpack's pure-Python code and say so).
    let args = |i: usize| match i % 2 {
        0 => vec!["greet".to_string(), i.to_string()],
        _ => vec!["roundtrip".to_string(), format!("[{i}]")],
    };
    let children: Vec<_> = (0..20)
        .map(|i| {
            clean(
                Command::new(&python).arg("-I").arg(&pyz).args(args(i)),
                &home,
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "run {i}: {}", stderr(&output));
        let expected = match i % 2 {
            0 => format!("Hello, {i}!\n"),
            _ => format!("[{i}] (2 bytes, compiled)\n"),
        };
        assert_eq!(stdout(&output), expected);
    }
    let extractions = listing(&home.join("cache/gradient/pyz"));
    assert_eq!(extractions.len(), 1, "{extractions:?}");
    assert!(extractions[0].starts_with("sampleapp-"));
}

#[test]
fn old_extractions_are_pruned_so_the_cache_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Five builds of five slightly different sources: five digests, five extractions made.
    let project = dir.path().join("sampleapp");
    copy_tree(&fixture("sampleapp"), &project);
    let module = project.join("src/sampleapp/cli.py");
    for build in 0..5 {
        let mut source = std::fs::read_to_string(&module).unwrap();
        source.push_str(&format!("\n# build {build}\n"));
        std::fs::write(&module, source).unwrap();
        let out = dir.path().join(format!("out{build}"));
        let output = run(gradient()
            .args(["build", "--no-smoke", "--to", "zipapp"])
            .arg(&project)
            .arg("--out")
            .arg(&out));
        assert!(output.status.success());
        let pyz = only_file(&out, ".pyz");
        assert!(run(clean(
            Command::new(python311())
                .arg("-I")
                .arg(&pyz)
                .args(["greet", "X"]),
            &home
        ))
        .status
        .success());
    }
    assert_eq!(
        listing(&home.join("cache/gradient/pyz")).len(),
        3,
        "the newest three are kept"
    );

    // A rebuild that changes only timestamps keeps the content digest and so the extraction.
    let out = dir.path().join("out-later");
    let output = run(gradient()
        .args(["build", "--no-smoke", "--to", "zipapp"])
        .arg(&project)
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(output.status.success());
    let before = listing(&home.join("cache/gradient/pyz"));
    assert!(run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(only_file(&out, ".pyz"))
            .args(["greet", "X"]),
        &home
    ))
    .status
    .success());
    assert_eq!(listing(&home.join("cache/gradient/pyz")), before);
}

#[test]
fn a_symlink_named_after_another_script_runs_that_script() {
    let dir = tempfile::tempdir().unwrap();
    let output = build_zipapp(&fixture("multi-script"), dir.path(), &[]);
    assert!(output.status.success());
    let pyz = only_file(dir.path(), ".pyz");
    let home = dir.path().join("home");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(python311(), bin.join("python3.11")).unwrap();
    std::os::unix::fs::symlink(&pyz, bin.join("multi-other")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let default = run(clean(&mut Command::new(&pyz), &home)
        .arg("a")
        .env("PATH", &path));
    assert_eq!(
        stdout(&default),
        "main: a\n",
        "the script named like the project runs by default"
    );
    let other = run(clean(&mut Command::new(bin.join("multi-other")), &home)
        .arg("b")
        .env("PATH", &path));
    assert_eq!(stdout(&other), "other: b\n");
}

#[test]
fn a_tampered_pyz_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        build_zipapp(&fixture("sampleapp"), dir.path(), &["--no-smoke"])
            .status
            .success()
    );
    let pyz = only_file(dir.path(), ".pyz");
    let mut bytes = std::fs::read(&pyz).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = dir.path().join("tampered.pyz");
    std::fs::write(&tampered, &bytes).unwrap();
    let home = dir.path().join("home");
    let output = run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(&tampered)
            .args(["greet", "X"]),
        &home,
    ));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the archive is damaged"),
        "{}",
        stderr(&output)
    );
    assert!(
        listing(&home.join("cache/gradient/pyz"))
            .iter()
            .all(|e| e.starts_with('.')),
        "nothing extracted"
    );

    // Changed after a good first run: the warm path notices the file changed and checks it.
    let good = dir.path().join("good.pyz");
    std::fs::copy(&pyz, &good).unwrap();
    assert!(run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(&good)
            .args(["greet", "X"]),
        &home
    ))
    .status
    .success());
    std::fs::write(&good, &bytes).unwrap();
    let output = run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(&good)
            .args(["greet", "X"]),
        &home,
    ));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("the archive is damaged"));

    // Truncated: the zip's end record is gone, so CPython refuses the file before any code
    // of ours can run. It still fails loudly rather than running something half there.
    let truncated = dir.path().join("truncated.pyz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let output = run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(&truncated)
            .args(["greet", "X"]),
        &home,
    ));
    assert_ne!(output.status.code(), Some(0));
    assert!(stdout(&output).is_empty());
}

#[test]
fn an_unwritable_cache_falls_back_to_the_temp_dir_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        build_zipapp(&fixture("sampleapp"), dir.path(), &["--no-smoke"])
            .status
            .success()
    );
    let pyz = only_file(dir.path(), ".pyz");
    let home = dir.path().join("home");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let output = run(clean(
        Command::new(python311())
            .arg("-I")
            .arg(&pyz)
            .args(["greet", "X"]),
        &home,
    )
    .env("GRADIENT_PYZ_CACHE", blocker.join("cache"))
    .env("TMPDIR", &tmp));
    assert!(output.status.success());
    assert_eq!(stdout(&output), "Hello, X!\n");
    assert!(
        stderr(&output).contains("cannot write to the cache"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        listing(&tmp).len(),
        1,
        "the extraction went to the temp dir"
    );

    // gradient's own cache likewise.
    let out = dir.path().join("out");
    let output = run(gradient()
        .args(["build", "--no-smoke", "--to", "wheel"])
        .arg(fixture("flit-app"))
        .arg("--out")
        .arg(&out)
        .env("GRADIENT_CACHE_DIR", blocker.join("gradient")));
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("cannot write to the cache"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unresolvable_dependencies_name_the_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let output = build_zipapp(&fixture("broken/unresolvable-dep"), &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("failed to resolve the dependencies of unresolvable-dep 0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("gradient-fixture-package-that-does-not-exist"),
        "{text}"
    );
    assert!(!out.exists(), "{:?}", listing(&out));
}

#[test]
fn a_dependency_without_a_wheel_that_cannot_be_built_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let packed = run(Command::new("tar")
        .arg("-C")
        .arg(fixture("broken/unbuildable-dep"))
        .arg("-czf")
        .arg(links.join("unbuildable_helper-0.1.tar.gz"))
        .args(["--transform", "s,^helper,unbuildable_helper-0.1,", "helper"]));
    assert!(packed.status.success());
    let out = dir.path().join("dist");
    let output = build_zipapp(
        &fixture("broken/unbuildable-dep"),
        &out,
        &["--find-links", links.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("unbuildable-helper"), "{text}");
    assert!(
        text.contains("needs a compiler this machine does not have"),
        "{text}"
    );
    assert!(
        text.contains("hint: a dependency without a wheel"),
        "{text}"
    );
    assert!(!out.exists(), "{:?}", listing(&out));
}

#[test]
fn a_python_excluded_by_requires_python_is_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let output = build_zipapp(
        &fixture("broken/requires-newer-python"),
        &out,
        &["--python", "3.11"],
    );
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("requires-newer-python requires Python >=3.12"),
        "{text}"
    );
    assert!(
        text.contains("the build interpreter is cpython 3.11"),
        "{text}"
    );
    assert!(text.contains("--python 3.12"), "{text}");
    assert!(!out.exists());
}

#[test]
fn without_uv_pip_does_the_same_job() {
    // GRADIENT_INSTALLER=pip: build environment, lock (pip's --report), wheelhouse and smoke
    // environments all go through pip instead of uv.
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .env("GRADIENT_INSTALLER", "pip")
        .env("GRADIENT_CACHE_DIR", dir.path().join("cache"))
        .args(["build", "--to", "wheel,zipapp"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path().join("dist")));
    assert!(output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("smoke `pip install sampleapp-1.2.3-py3-none-any.whl` ok"),
        "{text}"
    );
    assert!(
        text.contains("zipapp: smoke `sampleapp greet X` ok"),
        "{text}"
    );
    let lock = std::fs::read_to_string(dir.path().join("dist/sampleapp-1.2.3.lock.txt")).unwrap();
    assert!(
        lock.contains("click==") && lock.contains("msgpack==") && lock.contains("--hash=sha256:"),
        "{lock}"
    );
}

#[test]
fn package_metadata_entry_point_plugins_and_namespace_packages_work_from_the_archive() {
    // plugapp reads its version with importlib.metadata, finds its plugins through an
    // entry-point group, and loads them from a namespace package: each failed from a .pyz
    // (metadata under site/ is invisible to CPython's finder; zipimport needs folder
    // entries for a namespace package).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = build_zipapp(&fixture("plugin-app"), &out, &["--no-smoke"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let pyz = only_file(&out, ".pyz");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let python = clean_python(dir.path());
    let ran = run(clean(
        Command::new(&python).arg("-I").arg(&pyz).arg("report"),
        &home,
    ));
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(
        stdout(&ran).trim(),
        "plugapp 2.0.1: plugins circle, square; circle(2) = 12.57"
    );
    // The archive's own distribution, once, and none of the host's.
    let listed = run(clean(
        Command::new(&python).arg("-I").arg(&pyz).arg("dists"),
        &home,
    ));
    assert_eq!(stdout(&listed).trim(), "plugapp 2.0.1");
}

#[test]
fn the_archives_metadata_wins_over_another_version_the_interpreter_has_installed() {
    // An interpreter whose site-packages holds plugapp 1.0.0's metadata: the archive puts its
    // site/ before site-packages, so the app imports its own code, and must read its own
    // metadata too (importlib.metadata takes the first distribution of a name it finds).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = build_zipapp(&fixture("plugin-app"), &out, &["--no-smoke"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let pyz = only_file(&out, ".pyz");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let python = clean_python(dir.path());
    let site = run(Command::new(&python).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]));
    let old = Path::new(stdout(&site).trim()).join("plugapp-1.0.0.dist-info");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("METADATA"),
        "Metadata-Version: 2.1\nName: plugapp\nVersion: 1.0.0\n",
    )
    .unwrap();
    let ran = run(clean(
        Command::new(&python).arg("-I").arg(&pyz).arg("report"),
        &home,
    ));
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(
        stdout(&ran).trim(),
        "plugapp 2.0.1: plugins circle, square; circle(2) = 12.57"
    );
}
