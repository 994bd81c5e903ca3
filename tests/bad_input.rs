//! Every bad input: a clear message naming the problem, a non-zero exit, nothing new in the
//! output folder.

use crate::util::*;
use std::path::Path;

/// Build `project` into a fresh, not yet existing output folder and check that the run
/// failed with `code`, said `message`, and left the folder absent.
fn fails(project: &Path, extra: &[&str], code: i32, message: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let before = listing(&project.join("dist"));
    let output = run(gradient()
        .args(["build", "--to", "sdist,wheel"])
        .arg(project)
        .arg("--out")
        .arg(&out)
        .args(extra));
    assert_eq!(output.status.code(), Some(code));
    let text = stderr(&output);
    assert!(text.contains(message), "expected {message:?} in:\n{text}");
    assert!(
        !out.exists(),
        "the output folder was created: {:?}",
        listing(&out)
    );
    assert_eq!(
        listing(&project.join("dist")),
        before,
        "the project's dist/ changed"
    );
    text
}

#[test]
fn no_pyproject() {
    fails(
        &fixture("broken/no-pyproject"),
        &[],
        2,
        "no pyproject.toml or setup.py in `",
    );
}

#[test]
fn malformed_toml_names_file_line_and_column() {
    fails(
        &fixture("broken/malformed-toml"),
        &[],
        2,
        "broken/malformed-toml/pyproject.toml:4:20: ",
    );
}

#[test]
fn project_without_name() {
    fails(
        &fixture("broken/missing-name"),
        &[],
        2,
        "pyproject.toml:5:1: [project] has no `name`",
    );
}

#[test]
fn project_without_version_and_not_dynamic() {
    let text = fails(
        &fixture("broken/missing-version"),
        &[],
        2,
        "[project] has no `version` and does not list it in `dynamic`",
    );
    assert!(text.contains("hint: add `version"));
}

#[test]
fn a_console_script_naming_a_missing_module_stops_at_the_wheel() {
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let wrong = text.replace("\"sampleapp.cli:main\"", "\"sampleapp.climissing:main\"");
    assert_ne!(text, wrong);
    std::fs::write(&pyproject, wrong).unwrap();
    let text = fails(
        project.path(),
        &["--no-smoke"],
        1,
        "runs `sampleapp.climissing:main`, but the wheel holds no module `sampleapp.climissing`",
    );
    assert!(
        text.contains("hint: check the script's entry in [project.scripts]"),
        "{text}"
    );
}

#[test]
fn a_tag_without_an_image_tier_is_said_to_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "sdist", "--no-smoke", "--tag", "demo:1"])
        .arg(fixture("hatch-app"))
        .arg("--out")
        .arg(dir.path().join("dist")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("warning: --tag names image references, but neither oci nor docker is built"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unknown_tier_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "wheel,flatpak"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path().join("dist")));
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("unknown tier `flatpak`"), "{text}");
    assert!(
        text.contains("valid tiers are sdist, wheel, zipapp, frozen, oci, docker, deb, rpm"),
        "{text}"
    );
    assert!(!dir.path().join("dist").exists());
}

#[test]
fn build_backend_that_fails_to_import() {
    let text = fails(
        &fixture("broken/backend-missing"),
        &[],
        1,
        "failed to import the build backend `no_such_backend_module`",
    );
    assert!(text.contains("ModuleNotFoundError"), "{text}");
    assert!(text.contains("hint: check `build-backend`"), "{text}");
}

#[test]
fn build_backend_hook_that_raises_shows_its_output_tail() {
    let text = fails(&fixture("broken/hook-raises"), &[], 1, "the build backend's `build_sdist` hook failed: RuntimeError: the sample backend failed on purpose");
    assert!(
        text.contains("step 30 of 30"),
        "the tail of the backend's output is shown:\n{text}"
    );
    assert!(
        !text.contains("step 1 of 30\n"),
        "only the tail, not all of it:\n{text}"
    );
}

#[test]
fn no_usable_python_interpreter() {
    fails(
        &fixture("sampleapp"),
        &["--python", "/nonexistent/python3"],
        2,
        "`/nonexistent/python3` is not a usable Python interpreter",
    );
    fails(
        &fixture("sampleapp"),
        &["--python", "3.99"],
        2,
        "no Python interpreter found for Python 3.99",
    );
    // Nothing on PATH and no pyenv: the default search finds nothing and says what to do.
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "wheel", "--python", "python3"])
        .arg(fixture("hatch-app"))
        .arg("--out")
        .arg(dir.path().join("dist"))
        .env("PATH", "/nonexistent")
        .env("HOME", home.path())
        .env_remove("PYENV_ROOT"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not a usable Python interpreter"),
        "{}",
        stderr(&output)
    );
    let output = run(gradient()
        .args(["build", "--to", "wheel"])
        .arg(fixture("hatch-app"))
        .arg("--out")
        .arg(dir.path().join("dist"))
        .env("PATH", "/nonexistent")
        .env("HOME", home.path())
        .env_remove("PYENV_ROOT"));
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("no Python interpreter found for `python3` on PATH"),
        "{text}"
    );
    assert!(text.contains("hint:"), "{text}");

    // A version search that finds only an interpreter too old for gradient says so, not
    // "not found" with a hint to install what is already installed.
    let pyenv = home.path().join("pyenv");
    let bin = pyenv.join("versions/3.6.15/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let old_python = bin.join("python3.6");
    std::fs::write(
        &old_python,
        r#"#!/bin/sh
echo '{"executable": "/old/bin/python3.6", "implementation": "cpython", "version": [3, 6, 15], "python_tag": "cp36", "abi_tag": "cp36m", "platform_tag": "linux_x86_64", "base_prefix": "/old", "libc": ["glibc", "2.36"]}'
"#,
    )
    .unwrap();
    std::fs::set_permissions(
        &old_python,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let output = run(gradient()
        .args(["build", "--to", "wheel", "--python", "3.6"])
        .arg(fixture("hatch-app"))
        .arg("--out")
        .arg(dir.path().join("dist"))
        .env("PATH", "/nonexistent")
        .env("HOME", home.path())
        .env("GRADIENT_CACHE_DIR", home.path().join("cache"))
        .env("PYENV_ROOT", &pyenv));
    fails_with(
        &output,
        2,
        &["python3.6` is not a usable Python interpreter: it is Python 3.6.15, and gradient needs 3.8 or newer"],
    );
}

#[test]
fn output_folder_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    for out in [file.clone(), file.join("dist")] {
        let output = run(gradient()
            .args(["build", "--to", "wheel"])
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(&out));
        assert_eq!(output.status.code(), Some(2));
        let text = stderr(&output);
        assert!(text.contains("cannot write to the output folder"), "{text}");
        assert!(
            text.contains("hint: choose another one with --out DIR"),
            "{text}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

#[test]
fn sigint_mid_build_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let started = dir.path().join("started");
    let work_root = dir.path().join("tmp");
    std::fs::create_dir(&work_root).unwrap();
    let child = gradient()
        .args(["build", "--to", "sdist,wheel"])
        .arg(fixture("broken/slow-backend"))
        .arg("--out")
        .arg(&out)
        .env("GRADIENT_TEST_STARTED", &started)
        .env("TMPDIR", &work_root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow backend never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300)); // the backend writes its partial file
    assert!(
        !listing(&work_root).is_empty(),
        "the build was under way in its work folder"
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&output));
    assert_eq!(output.status.code(), Some(130));
    assert!(stderr(&output).contains("interrupted"));
    assert!(!out.exists(), "output folder: {:?}", listing(&out));
    assert_eq!(
        listing(&work_root),
        Vec::<String>::new(),
        "the work folder was removed"
    );
    // The backend's process group was killed with the build.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "slow_backend"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "a backend process survived: {}",
        stdout(&ps)
    );
}

/// A setting that lands in a control file, a unit file, a `#!` line or an image's config
/// cannot add lines of its own there: it is refused at its place in pyproject.toml, with
/// exit 2, before any build work.
#[test]
fn a_line_break_in_a_setting_that_lands_in_a_control_file_is_refused_at_its_place() {
    for (extra, key, says) in [
        (
            "[tool.gradient.deb]\nmaintainer = \"A <a@b.org>\\nBreaks: libc6\"\n",
            "maintainer = ",
            "[tool.gradient.deb]: the maintainer `A <a@b.org>\\nBreaks: libc6` holds a line break",
        ),
        (
            "[tool.gradient.rpm]\nmaintainer = \"A <a@b.org>\\rX\"\n",
            "maintainer = ",
            "[tool.gradient.rpm]: the maintainer `A <a@b.org>\\rX` holds a line break",
        ),
        (
            "[tool.gradient.zipapp]\nshebang = \"/bin/sh\\nid > /tmp/x\"\n",
            "shebang = ",
            "[tool.gradient.zipapp]: the shebang `/bin/sh\\nid > /tmp/x` holds a line break",
        ),
        (
            "[tool.gradient.container.env]\n\"A\\nB\" = \"1\"\n",
            "\"A\\nB\" = ",
            "[tool.gradient.container]: the environment variable name `A\\nB` holds a line break",
        ),
        (
            "[tool.gradient.container]\nworkdir = \"/srv/../../etc\"\n",
            "workdir = ",
            "[tool.gradient.container]: `/srv/../../etc` has a `..` component",
        ),
        (
            "[tool.gradient.service]\ncommand = [\"sampleapp\", \"x\\nUser=root\"]\n",
            "command = ",
            "[tool.gradient.service]: the command word `x\\nUser=root` holds a line break",
        ),
    ] {
        let project = sample_with(&format!("\n{extra}"));
        let text = std::fs::read_to_string(project.path().join("pyproject.toml")).unwrap();
        let offset = text.rfind(key).expect("the key is in the file");
        let line = text[..offset].matches('\n').count() + 1;
        let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + key.len() + 1;
        let message = fails(project.path(), &[], 2, says);
        assert!(
            message.contains(&format!("pyproject.toml:{line}:{column}: ")),
            "expected pyproject.toml:{line}:{column} in:\n{message}"
        );
    }
}

/// Image references the OCI/Docker grammar refuses are refused with exit 2 before any build
/// work, not by the engine after the build.
#[test]
fn image_references_the_engine_would_refuse_are_refused_before_building() {
    let long_name = "a".repeat(300);
    for tag in ["../x", long_name.as_str(), "a..b:1", "host:port/app"] {
        let dir = tempfile::tempdir().unwrap();
        let output = run(gradient()
            .args(["build", "--to", "sdist", "--no-smoke", "--tag", tag])
            .arg(fixture("hatch-app"))
            .arg("--out")
            .arg(dir.path().join("dist")));
        fails_with(
            &output,
            2,
            &[&format!("`{tag}` is not a valid image reference")],
        );
        assert!(!dir.path().join("dist").exists());
    }

    // The default tag, NAME:VERSION, from a version longer than a tag can be.
    let version = format!("1{}", ".0".repeat(112));
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("version = \"1.2.3\"", &format!("version = \"{version}\"")),
    )
    .unwrap();
    let text = fails(
        project.path(),
        &["--to", "oci"],
        2,
        &format!("`sampleapp:{version}` is not a valid image reference"),
    );
    assert!(text.contains("hint: "), "{text}");
}

/// An artifact whose name leaves no room for `.cdx.json` (a file name has at most 255 bytes)
/// still gets its SBOM, under a shortened name the manifest records.
#[test]
fn an_artifact_name_too_long_for_the_usual_sbom_name_still_gets_its_sbom() {
    let name = format!("sampleapp{}", "x".repeat(219));
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("name = \"sampleapp\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let output = build(project.path(), &out, &["--to", "wheel", "--no-smoke"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("no bill of materials"),
        "{}",
        stderr(&output)
    );
    let manifest = read_json(&out.join("gradient-manifest.json"));
    let artifact = &manifest["artifacts"][0];
    let wheel = artifact["file"].as_str().unwrap();
    assert!(wheel.len() + ".cdx.json".len() > 255, "{wheel}");
    let sbom = artifact["sbom"]["file"]
        .as_str()
        .expect("the SBOM is recorded");
    assert!(sbom.len() <= 255 && sbom.ends_with(".cdx.json"), "{sbom}");
    assert!(out.join(sbom).is_file(), "the SBOM is written");
    assert_eq!(
        sha256_file(&out.join(sbom)),
        artifact["sbom"]["sha256"].as_str().unwrap()
    );
}
