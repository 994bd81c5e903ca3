//! The frozen tier: one executable that runs where no Python exists.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the sample's frozen executable into `out` and return its path.
fn frozen_sample(out: &Path, smoke: bool) -> PathBuf {
    let mut command = gradient();
    command
        .args(["build", "--to", "frozen"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out);
    if !smoke {
        command.arg("--no-smoke");
    }
    let output = run(&mut command);
    assert!(output.status.success());
    only_file(out, "-linux-x86_64")
}

/// `program args` in a mount namespace where every Python of this host is hidden, with a
/// bare environment: the target the frozen tier promises to serve.
fn without_python(program: &Path, args: &[&str], home: &Path) -> Command {
    let mut script = String::from("set -e\n");
    let mut folders = vec![pyenv_root().display().to_string()];
    for parent in ["/usr/lib", "/usr/local/lib"] {
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("python") {
                folders.push(entry.path().display().to_string());
            }
        }
    }
    for folder in folders.iter().filter(|f| Path::new(f).is_dir()) {
        script.push_str(&format!("mount -t tmpfs hidden '{folder}'\n"));
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("python") {
                script.push_str(&format!(
                    "mount --bind /dev/null '{}'\n",
                    entry.path().display()
                ));
            }
        }
    }
    script.push_str("! command -v python3 >/dev/null || { echo 'a python is still visible' >&2; exit 99; }\nexec \"$@\"\n");
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"));
    command
}

fn extractions(home: &Path) -> Vec<String> {
    listing(&home.join("cache/gradient/frozen"))
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn the_sample_runs_with_every_host_python_hidden_and_builds_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(&dir.path().join("first"), true);
    let manifest: serde_json::Value = read_json(&dir.path().join("first/gradient-manifest.json"));
    let record = &manifest["artifacts"][0];
    assert_eq!(record["tier"], "frozen");
    assert_eq!(record["smoke"]["passed"], true, "{record}");
    assert!(record["target_needs"]["glibc"]
        .as_str()
        .unwrap()
        .starts_with("2."));
    assert!(
        record["target_needs"]["python"].is_null(),
        "the target needs no Python"
    );
    // The bill of materials names the embedded CPython and every bundled library, hashed.
    let sbom_file = record["sbom"]["file"].as_str().unwrap();
    let sbom_path = dir.path().join("first").join(sbom_file);
    assert_eq!(
        record["sbom"]["sha256"].as_str().unwrap(),
        sha256_file(&sbom_path)
    );
    let sbom: serde_json::Value = read_json(&sbom_path);
    let components = sbom["components"].as_array().unwrap();
    let cpython = components.iter().find(|c| c["name"] == "cpython").unwrap();
    assert_eq!(cpython["version"], manifest["python"]["version"]);
    let libpython = components
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("libpython3"))
        .expect("libpython is bundled and listed");
    assert_eq!(
        libpython["hashes"][0]["content"].as_str().unwrap().len(),
        64
    );
    for dist in ["click", "msgpack"] {
        assert!(components.iter().any(|c| c["name"] == dist), "{dist}");
    }

    let home = dir.path().join("home");
    let greet = run(&mut without_python(&exe, &["greet", "X"], &home));
    assert_eq!(stdout(&greet), "Hello, X!\n");
    let roundtrip = run(&mut without_python(
        &exe,
        &["roundtrip", "{\"a\": [1, 2]}"],
        &home,
    ));
    assert_eq!(stdout(&roundtrip), "{\"a\": [1, 2]} (6 bytes, compiled)\n");
    // The host's Python settings do not reach the bundled interpreter.
    let isolated = run(without_python(&exe, &["greet", "Y"], &home)
        .env("PYTHONPATH", "/nonexistent")
        .env("PYTHONHOME", "/nonexistent"));
    assert_eq!(stdout(&isolated), "Hello, Y!\n");
    // Exit status passes through (click's usage error is 2).
    let usage = run(&mut without_python(&exe, &["greet"], &home));
    assert_eq!(usage.status.code(), Some(2));
    assert_eq!(extractions(&home).len(), 1);
    the_prelude_names_every_stdlib_module_as_zipimport_does(
        &home
            .join("cache/gradient/frozen")
            .join(&extractions(&home)[0]),
    );

    // Built again from nothing: a fresh cache makes the runtime bundle anew (another staging
    // folder, another compile), and the bytes must not change.
    let second = dir.path().join("second");
    let output = run(gradient()
        .env("GRADIENT_CACHE_DIR", dir.path().join("fresh-cache"))
        .args(["build", "--no-smoke", "--to", "frozen"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&second));
    assert!(output.status.success());
    let again = only_file(&second, "-linux-x86_64");
    assert_eq!(
        sha256_file(&exe),
        sha256_file(&again),
        "two builds from two caches, same bytes"
    );
}

/// The launcher's prelude answers zipimport's `get_filename` from the zip's listing for
/// the bundle's standard library: for every module in that zip, the answer must be the one
/// zipimport gives by loading the module's code.
fn the_prelude_names_every_stdlib_module_as_zipimport_does(extraction: &Path) {
    let check = r#"
zip_path = "%s/lib/python%d%d.zip" % (sys.base_prefix, *sys.version_info[:2])
assert zip_path in sys.path, (zip_path, sys.path)
fast = zipimport.zipimporter.get_filename
slow = fast.__defaults__[0]
assert fast is not slow, "the prelude did not replace get_filename"
def refuse(importer, name):
    raise RuntimeError("the prelude fell back to zipimport's own get_filename")
checked = 0
listing = zipimport.zipimporter(zip_path)
listing = listing._get_files() if hasattr(listing, "_get_files") else listing._files
for entry in sorted(listing):
    if not entry.endswith(".pyc"):
        continue
    parts = entry[:-4].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    name, folder = ".".join(parts), "/".join(parts[:-1])
    importer = zipimport.zipimporter(zip_path + ("/" + folder if folder else ""))
    # The listing alone must answer (no fallback), and give zipimport's own answer.
    answers = [fast(importer, name, _original=refuse)]
    try:
        answers.append(slow(importer, name))
    except Exception as error:
        answers.append(type(error).__name__)
    assert answers[0] == answers[1], (name, answers)
    checked += 1
assert checked > 300, checked
print(checked)
"#;
    let launch = std::fs::read_to_string(extraction.join("launch.txt")).unwrap();
    let python = launch
        .lines()
        .find_map(|line| line.strip_prefix("python = "))
        .map(|relative| extraction.join(relative))
        .expect("launch.txt names the interpreter");
    let output = run(Command::new(&python)
        .arg("-I")
        .arg("-c")
        .arg(format!("{}{check}", gradient_launcher::STDLIB_ZIP_PRELUDE)));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn twenty_concurrent_first_runs_leave_one_extraction() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(dir.path(), false);
    let home = dir.path().join("home");
    let children: Vec<_> = (0..20)
        .map(|i| {
            without_python(&exe, &["greet", &i.to_string()], &home)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "run {i}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("Hello, {i}!\n"));
    }
    assert_eq!(extractions(&home).len(), 1, "{:?}", extractions(&home));
}

#[test]
fn a_flipped_byte_or_a_truncated_file_is_named_and_nothing_is_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(dir.path(), false);
    let bytes = std::fs::read(&exe).unwrap();
    let home = dir.path().join("home");

    let flipped = dir.path().join("flipped");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    write_executable(&flipped, &damaged);
    let output = run(&mut without_python(&flipped, &["greet", "X"], &home));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this executable is damaged"),
        "{}",
        stderr(&output)
    );
    assert!(extractions(&home).is_empty());

    let truncated = dir.path().join("truncated");
    write_executable(&truncated, &bytes[..bytes.len() - 1000]);
    let output = run(&mut without_python(&truncated, &["greet", "X"], &home));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("carries no app payload"),
        "{}",
        stderr(&output)
    );
    assert!(extractions(&home).is_empty());
}

fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_unwritable_cache_falls_back_to_the_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(dir.path(), false);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let output = run(
        without_python(&exe, &["greet", "X"], &dir.path().join("home"))
            .env("GRADIENT_FROZEN_CACHE", blocker.join("cache"))
            .env("TMPDIR", &tmp),
    );
    assert!(output.status.success());
    assert_eq!(stdout(&output), "Hello, X!\n");
    assert!(
        stderr(&output).contains("cannot write to the cache"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        listing(&tmp)
            .iter()
            .filter(|n| n.starts_with("gradient-frozen-"))
            .count(),
        1
    );
}

#[test]
fn a_disk_that_fills_during_extraction_leaves_no_tree_that_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(dir.path(), false);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // A 4 MiB filesystem for the cache: the extraction (tens of MiB) cannot fit.
    let script = format!(
        "mount -t tmpfs -o size=4m small '{}' && exec \"$0\" \"$@\"",
        small.display()
    );
    let output = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(&exe)
        .args(["greet", "X"])
        .env("GRADIENT_FROZEN_CACHE", &small));
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("failed to extract into"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    // The tmpfs is gone with its namespace; what matters is that the run failed cleanly and
    // a later run with room succeeds.
    let home = dir.path().join("home");
    assert_eq!(
        stdout(&run(&mut without_python(&exe, &["greet", "X"], &home))),
        "Hello, X!\n"
    );
}

/// A project copy whose `[tool.gradient] runtime` names `archive`.
fn sample_with_runtime(dir: &Path, archive: &str) -> PathBuf {
    let project = dir.join("sampleapp");
    copy_tree(&fixture("sampleapp"), &project);
    let pyproject = project.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap().replace(
        "python = \"3.11\"\n",
        &format!("python = \"3.11\"\nruntime = \"{archive}\"\n"),
    );
    std::fs::write(&pyproject, text).unwrap();
    project
}

#[test]
fn a_named_runtime_archive_is_bundled_and_its_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // A relocatable CPython archive, made here from the build interpreter's prefix (no
    // registry serves python-build-standalone on this machine).
    // The newest pyenv 3.11: what gradient picks for the sample's `python = "3.11"`.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(pyenv_root().join("versions"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let patch = e
                .file_name()
                .to_string_lossy()
                .strip_prefix("3.11.")?
                .parse()
                .ok()?;
            Some((patch, e.path()))
        })
        .collect();
    versions.sort();
    let prefix = versions
        .pop()
        .expect("a pyenv 3.11 (the machine's build interpreter)")
        .1;
    let archive = dir.path().join("cpython-3.11-linux-x86_64.tar.gz");
    let packed = run(Command::new("tar")
        .args([
            "-I",
            "gzip -1",
            "--exclude=site-packages",
            "--exclude=test",
            "--exclude=__pycache__",
            "--exclude=*.a",
            "--exclude=idlelib",
            "--exclude=tkinter",
        ])
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(prefix.parent().unwrap())
        .arg(prefix.file_name().unwrap()));
    assert!(packed.status.success());

    let project = sample_with_runtime(dir.path(), archive.to_str().unwrap());
    let output = run(gradient()
        .args(["build", "--to", "frozen"])
        .arg(&project)
        .arg("--out")
        .arg(dir.path().join("ok")));
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("bundling the runtime from"),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("ok (5/5)"),
        "the smoke test passed with every host Python hidden (five checks with the reference venv's)"
    );

    let fails = |name: &str, archive: &Path, message: &str| {
        let project = sample_with_runtime(&dir.path().join(name), archive.to_str().unwrap());
        let out = dir.path().join(name).join("dist");
        let output = run(gradient()
            .args(["build", "--to", "frozen"])
            .arg(&project)
            .arg("--out")
            .arg(&out));
        assert_eq!(output.status.code(), Some(1));
        let text = stderr(&output);
        assert!(text.contains(message), "expected {message:?} in:\n{text}");
        assert!(text.contains("hint:"), "{text}");
        assert!(!out.join("sampleapp-1.2.3-linux-x86_64").exists());
    };
    fails(
        "missing",
        &dir.path().join("no-such-cpython.tar.gz"),
        "does not exist",
    );

    let corrupt = dir.path().join("corrupt.tar.gz");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    fails("corrupt", &corrupt, "cannot be read");

    // Another machine's interpreter: the real one with its ELF machine set to AArch64.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(foreign.join("python/bin")).unwrap();
    let mut binary = std::fs::read(prefix.join("bin/python3.11")).unwrap();
    binary[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(foreign.join("python/bin/python3.11"), binary).unwrap();
    let foreign_archive = dir.path().join("cpython-aarch64.tar.gz");
    assert!(run(Command::new("tar")
        .arg("-czf")
        .arg(&foreign_archive)
        .arg("-C")
        .arg(&foreign)
        .arg("python"))
    .status
    .success());
    fails(
        "foreign",
        &foreign_archive,
        "holds a CPython for linux aarch64",
    );
}

/// An interpreter that says it is for linux/aarch64 (a cross interpreter, as
/// `_PYTHON_HOST_PLATFORM` makes one), in its own folder: the tiers bound to the build's
/// platform refuse it.
fn cross_interpreter(dir: &std::path::Path) -> std::path::PathBuf {
    let python = dir.join("python3-aarch64");
    std::fs::write(
        &python,
        "#!/bin/sh\n_PYTHON_HOST_PLATFORM=linux-aarch64 exec python3.11 \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    python
}

#[test]
fn a_named_tier_this_host_cannot_build_is_listed_with_its_reason_and_fails_the_run() {
    let scratch = tempfile::tempdir().unwrap();
    let python = cross_interpreter(scratch.path());
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .arg("build")
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out.path())
        .args(["--to", "wheel,frozen,oci", "--no-smoke", "--python"])
        .arg(&python));
    // Not a crash: the other tier is built, the table lists frozen as skipped with the
    // reason, and the run fails because frozen was asked for by name.
    fails_with(
        &output,
        1,
        &[
            "frozen failed: cannot be built on this host",
            "built for linux_x86_64 only, and this interpreter is for linux_aarch64",
        ],
    );
    let table = stdout(&output);
    let row = table.lines().find(|l| l.starts_with("frozen")).unwrap();
    assert!(
        row.contains("skipped") && row.contains("linux_aarch64"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("wheel ")), "{table}");
    let manifest: serde_json::Value = read_json(&out.path().join("gradient-manifest.json"));
    assert_eq!(manifest["skipped"][0]["tier"], "frozen");
    assert!(manifest["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("linux_aarch64"));
    // The image is refused the same way, instead of failing the whole run.
    assert_eq!(manifest["skipped"][1]["tier"], "oci");
    // And doctor says so before any build.
    let doctor = stdout(&run(gradient().arg("doctor").arg("--python").arg(&python)));
    for tier in ["frozen", "oci", "docker"] {
        let row = doctor.lines().find(|l| l.starts_with(tier)).unwrap();
        assert!(
            row.contains("unavailable") && row.contains("linux_aarch64"),
            "{doctor}"
        );
    }
}

#[test]
fn debians_own_interpreter_without_a_runpath_is_bundled_with_one_inserted() {
    // Debian's python3.11 links libz and libexpat with no RUNPATH: the bundle inserts one.
    let debian = std::path::Path::new("/usr/bin/python3.11");
    if !debian.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide Debian's python3.11 (see .ci/run)"
        );
        eprintln!("skipping: no Debian python3.11 on this machine");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &["--to", "frozen", "--python", "/usr/bin/python3.11"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let row = table.lines().find(|l| l.starts_with("frozen")).unwrap();
    assert!(
        row.contains("ok ("),
        "smoke-tested, every Python of the host hidden: {table}"
    );
}

#[test]
fn the_pyinstaller_engine_builds_the_same_app_for_comparison() {
    let project = sample_with("\n[tool.gradient.frozen]\nengine = \"pyinstaller\"\n");
    let out = tempfile::tempdir().unwrap();
    let output = build(project.path(), out.path(), &["--to", "frozen"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let exe = only_file(out.path(), "-linux-x86_64");
    // PyInstaller's executable: its archive cookie, not gradient's trailer.
    let bytes = std::fs::read(&exe).unwrap();
    assert!(
        bytes.windows(8).any(|w| w == b"MEI\x0c\x0b\x0a\x0b\x0e"),
        "a PyInstaller archive"
    );
    assert!(
        !bytes.windows(8).any(|w| w == b"GRADFRZ2"),
        "no gradient trailer"
    );
    let manifest: serde_json::Value = read_json(&out.path().join("gradient-manifest.json"));
    let smoke = &manifest["artifacts"][0]["smoke"];
    assert_eq!(smoke["passed"], true, "{smoke}");
    let commands: Vec<&str> = smoke["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(
        commands.contains(&"2 concurrent runs of sampleapp greet X"),
        "{commands:?}"
    );
    // It runs with every host Python hidden, and says what the app says.
    let home = tempfile::tempdir().unwrap();
    let greet = run(&mut without_python(&exe, &["greet", "X"], home.path()));
    assert_eq!(stdout(&greet), "Hello, X!\n");
}

#[test]
fn a_flipped_byte_in_the_launcher_is_refused_on_first_and_on_warm_runs() {
    let dir = tempfile::tempdir().unwrap();
    let exe = frozen_sample(dir.path(), false);
    let bytes = std::fs::read(&exe).unwrap();
    // A byte the launcher never executes or reads while it starts (the compiler's note in
    // its .comment section), so that only the digest can notice it.
    let note = b"rustc version";
    let at = bytes
        .windows(note.len())
        .position(|w| w == note)
        .expect("the launcher carries rustc's note");
    let trailer = gradient_launcher::read_trailer(&mut std::fs::File::open(&exe).unwrap()).unwrap();
    assert!((at as u64) < trailer.offset, "inside the launcher");
    let mut damaged = bytes.clone();
    damaged[at] ^= 0x01;
    let flipped = dir.path().join("flipped");
    write_executable(&flipped, &damaged);

    // First run: nothing extracted yet.
    let home = dir.path().join("home");
    let output = run(&mut without_python(&flipped, &["greet", "X"], &home));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this executable is damaged"),
        "{}",
        stderr(&output)
    );
    assert!(extractions(&home).is_empty());

    // Warm: the intact executable extracted the same payload first.
    let output = run(&mut without_python(&exe, &["greet", "X"], &home));
    assert_eq!(stdout(&output), "Hello, X!\n");
    let output = run(&mut without_python(&flipped, &["greet", "X"], &home));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this executable is damaged"),
        "{}",
        stderr(&output)
    );
    // And the intact one still runs warm.
    let output = run(&mut without_python(&exe, &["greet", "Y"], &home));
    assert_eq!(stdout(&output), "Hello, Y!\n");
}
