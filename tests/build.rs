//! Building real projects: the sample app and one fixture per PEP 517 backend.

use crate::util::*;
use std::path::Path;
use std::process::Command;

fn build_into(
    project: &str,
    tiers: &str,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    run(gradient()
        .args(["build", "--to", tiers])
        .arg(fixture(project))
        .arg("--out")
        .arg(out)
        .args(extra))
}

#[test]
fn sampleapp_sdist_and_wheel_are_reproducible_checked_and_runnable() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    // The second build makes everything again rather than reusing the first one's.
    for (out, extra) in [(&first, &[][..]), (&second, &["--rebuild"][..])] {
        let output = build_into("sampleapp", "sdist,wheel", out, extra);
        assert!(output.status.success());
        assert!(
            stdout(&output).contains("ok (2/2)"),
            "both smoke tests pass"
        );
    }
    for suffix in [".tar.gz", ".whl"] {
        let (a, b) = (only_file(&first, suffix), only_file(&second, suffix));
        assert_eq!(
            sha256_file(&a),
            sha256_file(&b),
            "{suffix} differs between two builds"
        );
    }

    // The manifest and SHA256SUMS describe exactly the files written.
    let manifest: serde_json::Value = read_json(&first.join("gradient-manifest.json"));
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["project"]["name"], "sampleapp");
    assert_eq!(manifest["project"]["version"], "1.2.3");
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 2);
    for artifact in artifacts {
        let file = first.join(artifact["file"].as_str().unwrap());
        assert_eq!(artifact["sha256"].as_str().unwrap(), sha256_file(&file));
        assert_eq!(
            artifact["size"].as_u64().unwrap(),
            std::fs::metadata(&file).unwrap().len()
        );
        assert_eq!(artifact["smoke"]["passed"], true);
    }
    let sums = run(Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&first));
    assert!(sums.status.success());
    // The sdist and the wheel, and the SBOM of each.
    assert_eq!(stdout(&sums).matches(": OK").count(), 4);

    // Real pip installs the wheel into a fresh environment and the console script runs.
    let venv = dir.path().join("venv");
    assert!(run(Command::new(host_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv))
    .status
    .success());
    let pip = run(Command::new(host_python())
        .args(["-m", "pip", "--python"])
        .arg(venv.join("bin/python"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(only_file(&first, ".whl")));
    assert!(pip.status.success());
    let greet = run(Command::new(venv.join("bin/sampleapp"))
        .args(["greet", "X"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin"));
    assert_eq!(stdout(&greet).trim(), "Hello, X!");
    let roundtrip = run(Command::new(venv.join("bin/sampleapp")).args(["roundtrip", "{\"a\": 1}"]));
    assert!(
        stdout(&roundtrip).contains("{\"a\": 1}"),
        "msgpack round-trips"
    );

    if require_python_module("twine") {
        let twine = run(Command::new(host_python())
            .args(["-m", "twine", "check", "--strict"])
            .arg(only_file(&first, ".tar.gz"))
            .arg(only_file(&first, ".whl")));
        assert!(twine.status.success());
        assert_eq!(stdout(&twine).matches("PASSED").count(), 2);
    }
}

#[test]
fn the_wheel_is_identical_built_directly_or_via_the_sdist() {
    let dir = tempfile::tempdir().unwrap();
    let (via, direct) = (dir.path().join("via"), dir.path().join("direct"));
    assert!(build_into("sampleapp", "wheel", &via, &["--no-smoke"])
        .status
        .success());
    assert!(
        build_into("sampleapp", "wheel", &direct, &["--no-smoke", "--direct"])
            .status
            .success()
    );
    assert_eq!(
        sha256_file(&only_file(&via, ".whl")),
        sha256_file(&only_file(&direct, ".whl"))
    );
    assert_eq!(
        listing(&direct),
        [
            "SHA256SUMS",
            "gradient-manifest.json",
            "report.html",
            "report.json",
            "report.md",
            "sampleapp-1.2.3-py3-none-any.whl",
            "sampleapp-1.2.3-py3-none-any.whl.cdx.json"
        ]
    );
}

#[test]
fn source_date_epoch_sets_every_timestamp_and_verbose_output_says_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "-v", "--no-smoke", "--to", "sdist"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path())
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(output.status.success());
    assert!(stderr(&output).contains("source date: 1700000000 (from SOURCE_DATE_EPOCH)"));
    let sdist = only_file(dir.path(), ".tar.gz");
    let listing = run(Command::new("tar").args(["--utc", "-tvzf"]).arg(&sdist));
    let lines = stdout(&listing);
    assert!(!lines.is_empty());
    for line in lines.lines() {
        assert!(
            line.contains("2023-11-14 22:13"),
            "entry not at SOURCE_DATE_EPOCH: {line}"
        );
        assert!(line.contains("0/0"), "entry not owned by 0/0: {line}");
    }
    // A bad value is refused, not ignored.
    let bad = run(gradient()
        .args(["build", "--to", "sdist"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path().join("bad"))
        .env("SOURCE_DATE_EPOCH", "yesterday"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("SOURCE_DATE_EPOCH=`yesterday` is not a whole number"));
    // So is a date no wheel can hold (its zip dates end with 2107), before any backend runs.
    let late = run(gradient()
        .args(["build", "--to", "sdist"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path().join("late"))
        .env("SOURCE_DATE_EPOCH", "4354819200"));
    assert_eq!(late.status.code(), Some(2));
    assert!(stderr(&late).contains("SOURCE_DATE_EPOCH=`4354819200` is after 2107-12-31"));
}

/// Every PEP 517 backend the foundation covers builds both files and passes its smoke test.
macro_rules! backend_fixture {
    ($test:ident, $fixture:literal, $wheel_prefix:literal) => {
        #[test]
        fn $test() {
            let dir = tempfile::tempdir().unwrap();
            let output = build_into($fixture, "sdist,wheel", dir.path(), &[]);
            assert!(output.status.success());
            let wheel = only_file(dir.path(), ".whl");
            assert!(wheel
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with($wheel_prefix));
            only_file(dir.path(), ".tar.gz");
            let manifest: serde_json::Value = read_json(&dir.path().join("gradient-manifest.json"));
            for artifact in manifest["artifacts"].as_array().unwrap() {
                assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
                // The smoke test ran the project's own command, not only an install.
                let checks = artifact["smoke"]["checks"].as_array().unwrap();
                assert!(checks.len() >= 2, "{artifact}");
            }
        }
    };
}

backend_fixture!(
    hatchling_builds,
    "hatch-app",
    "hatch_app-0.1.0-py3-none-any"
);
backend_fixture!(flit_core_builds, "flit-app", "flit_app-0.1.0-py3-none-any");
backend_fixture!(
    poetry_core_builds,
    "poetry-app",
    "poetry_app-0.1.0-py3-none-any"
);
backend_fixture!(pdm_backend_builds, "pdm-app", "pdm_app-0.1.0-py3-none-any");
backend_fixture!(
    setuptools_pyproject_builds,
    "setuptools-app",
    "setuptools_app-0.1.0-py3-none-any"
);
backend_fixture!(
    legacy_setup_py_builds,
    "legacy-setuppy",
    "legacy_setuppy-0.3.0-py3-none-any"
);

#[test]
fn a_warm_build_reuses_the_build_environment_and_a_broken_one_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let build = |out: &str| {
        run(gradient()
            .env("GRADIENT_CACHE_DIR", &cache)
            .args(["build", "--no-smoke", "--rebuild", "--to", "wheel"])
            .arg(fixture("flit-app"))
            .arg("--out")
            .arg(dir.path().join(out)))
    };
    assert!(stderr(&build("a")).contains("(new build environment)"));
    assert!(!stderr(&build("b")).contains("(new build environment)"));
    // Remove the completion marker: the environment must not be trusted again.
    let envs = cache.join("build-envs");
    let env = std::fs::read_dir(&envs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    std::fs::remove_file(env.join("gradient-build-env.json")).unwrap();
    let rebuilt = build("c");
    assert!(rebuilt.status.success());
    assert!(stderr(&rebuilt).contains("(new build environment)"));
}

#[test]
fn an_unchanged_project_reuses_its_cached_build_and_a_change_or_corruption_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let project = dir.path().join("hatch-app");
    copy_tree(&fixture("hatch-app"), &project);
    let build = |out: &str| {
        run(gradient()
            .env("GRADIENT_CACHE_DIR", &cache)
            .args(["build", "--no-smoke", "--to", "sdist,wheel"])
            .arg(&project)
            .arg("--out")
            .arg(dir.path().join(out)))
    };
    let first = build("a");
    assert!(
        stderr(&first).contains("  built sdist and wheel"),
        "{}",
        stderr(&first)
    );
    let second = build("b");
    assert!(
        stderr(&second).contains("reused the cached sdist and wheel"),
        "{}",
        stderr(&second)
    );
    for suffix in [".whl", ".tar.gz"] {
        assert_eq!(
            sha256_file(&only_file(&dir.path().join("a"), suffix)),
            sha256_file(&only_file(&dir.path().join("b"), suffix))
        );
    }

    // A changed source file is a new build.
    let module = project.join("src/hatch_app/__init__.py");
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, format!("{text}\n# changed\n")).unwrap();
    assert!(stderr(&build("c")).contains("  built sdist and wheel"));

    // A cached file whose bytes no longer match its digest is detected and rebuilt.
    let entries = cache.join("dists");
    for entry in std::fs::read_dir(&entries).unwrap() {
        let entry = entry.unwrap().path();
        for file in std::fs::read_dir(&entry).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "whl") {
                let mut bytes = std::fs::read(&file).unwrap();
                bytes[10] ^= 0xff;
                std::fs::write(&file, bytes).unwrap();
            }
        }
    }
    let repaired = build("d");
    assert!(repaired.status.success());
    let text = stderr(&repaired);
    assert!(
        text.contains("is corrupt") && text.contains("does not match its recorded digest"),
        "{text}"
    );
    assert!(text.contains("  built sdist and wheel"), "{text}");
    assert!(stderr(&build("e")).contains("reused the cached sdist and wheel"));
}

#[test]
fn smoke_tests_fail_for_a_broken_artifact() {
    // A copy of the sample whose expected output is wrong: the smoke test must catch it.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("sampleapp");
    copy_tree(&fixture("sampleapp"), &project);
    let pyproject = project.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject)
        .unwrap()
        .replace("expect = \"Hello, X!\"", "expect = \"Goodbye\"");
    std::fs::write(&pyproject, text).unwrap();
    let output = run(gradient().args(["build", "--to", "wheel"]).arg(&project));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("FAILED"));
    assert!(stderr(&output).contains("expected `Goodbye`"));
}

#[test]
fn an_incomplete_sdist_fails_its_smoke_test_and_names_what_is_missing() {
    // The sdist leaves out __main__.py, so the wheel built from it lacks the file too.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("hatch-app");
    copy_tree(&fixture("hatch-app"), &project);
    let pyproject = project.join("pyproject.toml");
    let mut text = std::fs::read_to_string(&pyproject).unwrap();
    text.push_str(
        "\n[tool.hatch.build.targets.sdist]\nexclude = [\"src/hatch_app/__main__.py\"]\n",
    );
    std::fs::write(&pyproject, text).unwrap();
    let output = run(gradient().args(["build", "--to", "sdist"]).arg(&project));
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("the wheels from the sdist and from the tree differ"),
        "{text}"
    );
    assert!(
        text.contains("`hatch_app/__main__.py` is only in the wheel built from the source tree"),
        "{text}"
    );
}

#[test]
fn files_a_run_stops_listing_are_named_not_dropped_in_silence() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("app");
    copy_tree(&fixture("hatch-app"), &project);
    let out = dir.path().join("dist");
    let listed = |out: &Path| {
        read_json(&out.join("gradient-manifest.json"))["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["file"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let first = build(&project, &out, &["--to", "sdist,wheel", "--no-smoke"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let sdist = only_file(&out, ".tar.gz");
    // The sdist's row is kept from the first run, and the table says which rows those are.
    let again = build(&project, &out, &["--to", "wheel", "--no-smoke"]);
    assert!(
        stdout(&again).contains("from earlier runs, unchanged in the folder: sdist\n"),
        "{}",
        stdout(&again)
    );

    // An earlier artifact changed by hand: no longer listed, and said so; still there.
    std::fs::write(&sdist, b"not the sdist any more").unwrap();
    let second = build(&project, &out, &["--to", "wheel", "--no-smoke"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let name = sdist.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr(&second).contains(&format!(
            "`{name}` has changed since the run that listed it"
        )),
        "{}",
        stderr(&second)
    );
    assert!(!listed(&out).contains(&name));
    assert!(sdist.is_file());

    // A new version: the old version's files stay in the folder, named in a warning.
    let pyproject = project.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let third = build(&project, &out, &["--to", "wheel", "--no-smoke"]);
    assert!(third.status.success(), "{}", stderr(&third));
    let text = stderr(&third);
    assert!(
        text.contains("the output folder still holds files of hatch-app 0.1.0, which this run of hatch-app 0.2.0 does not list")
            && text.contains("hatch_app-0.1.0-py3-none-any.whl"),
        "{text}"
    );
}
