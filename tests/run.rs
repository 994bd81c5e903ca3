//! How a run of several tiers behaves as a whole: a failing tier and the others, and two
//! runs on the same project at once.

use crate::util::*;
use std::process::Command;

#[test]
fn a_failing_tier_does_not_stop_the_others_unless_fail_fast_is_given() {
    let project = sample_without_maintainer_email();
    let out = project.path().join("dist");
    // --rebuild: the frozen tier really builds rather than being reused.
    let output = build(
        project.path(),
        &out,
        &["--rebuild", "--no-smoke", "--to", "deb,frozen"],
    );
    fails_with(&output, 1, &["deb failed", "without an email address"]);
    assert!(
        only_file(&out, "-linux-x86_64").exists(),
        "the frozen tier finished"
    );
    assert!(stdout(&output).contains("frozen"), "and is in the table");

    // With --fail-fast the deb's failure stops the frozen tier, which is still building or
    // smoke-testing (seconds) when the deb fails (milliseconds after the shared inputs).
    let out = project.path().join("dist-fast");
    let output = build(
        project.path(),
        &out,
        &["--rebuild", "--fail-fast", "--to", "deb,frozen"],
    );
    fails_with(
        &output,
        1,
        &[
            "deb failed",
            "frozen failed: stopped: another tier failed and --fail-fast was given",
        ],
    );
    assert!(
        !stderr(&output).contains("frozen: smoke `"),
        "no frozen smoke check finished"
    );
}

#[test]
fn a_second_run_on_the_same_project_or_into_the_same_folder_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let wheel = |project: &std::path::Path| {
        run(gradient()
            .env("GRADIENT_CACHE_DIR", &cache)
            .args(["build", "--no-smoke", "--to", "wheel"])
            .arg(project)
            .arg("--out")
            .arg(&out))
    };
    assert!(wheel(&fixture("sampleapp")).status.success());
    let lock = |prefix: &str| {
        let locks = listing(&cache.join("locks"));
        assert_eq!(
            locks.len(),
            2,
            "the project's and the output folder's: {locks:?}"
        );
        let name = locks
            .iter()
            .find(|name| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no lock named {prefix}*: {locks:?}"));
        cache.join("locks").join(name)
    };

    // Another holder of a lock (flock(1), the same kind of lock) for two seconds.
    let waits_for = |lock: std::path::PathBuf, project: &std::path::Path, says: &str| {
        let mut holder = Command::new("flock")
            .arg(&lock)
            .args(["sleep", "2"])
            .spawn()
            .expect("flock (util-linux) runs");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let started = std::time::Instant::now();
        let second = wheel(project);
        assert!(second.status.success(), "{}", stderr(&second));
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(1200),
            "it waited for the holder of {}",
            lock.display()
        );
        let err = stderr(&second);
        assert!(err.contains(says), "{err}");
        assert!(err.contains("waiting for it to finish"), "{err}");
        holder.wait().unwrap();
    };
    waits_for(
        lock("sampleapp-"),
        &fixture("sampleapp"),
        "another gradient run is building",
    );
    // Another project into the same output folder waits too (the manifest, SHA256SUMS).
    let other = sample_with("");
    waits_for(
        lock("out-"),
        other.path(),
        "another gradient run is writing into",
    );
}

#[test]
fn a_cold_compare_locks_its_folders_where_every_other_run_looks() {
    // `compare --cold` builds with an empty cache of its own; its locks must still be the
    // ones a normal run takes, in the user's cache.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let output = run(gradient()
        .env("GRADIENT_CACHE_DIR", &cache)
        .args(["compare", "--cold", "--no-smoke", "--to", "wheel"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(dir.path().join("out")));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut locks = listing(&cache.join("locks"));
    locks
        .iter_mut()
        .for_each(|name| name.truncate(name.rfind('-').unwrap()));
    locks.sort();
    assert_eq!(locks, ["out", "sampleapp"]);
}

#[test]
fn advise_ranks_the_tiers_for_what_the_target_has_and_refuses_unknown_facts() {
    let advise = |has: &str, extra: &[&str]| {
        run(gradient()
            .args(["advise", "--has", has])
            .args(extra)
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg("/nonexistent/no-earlier-build"))
    };
    let output = advise("python3.11,pip", &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    let first = text.lines().nth(1).unwrap();
    assert!(first.starts_with("1.") && first.contains("wheel"), "{text}");
    assert!(
        text.contains("best fit: gradient build --to wheel"),
        "{text}"
    );
    assert!(text.contains("needs a container engine"), "{text}");

    // Offline with another Python: only tiers that bring their own dependencies and CPython.
    let output = advise("python3.9,pip,glibc2.99,docker", &["--offline"]);
    let text = stdout(&output);
    assert!(
        text.contains("best fit: gradient build --to frozen"),
        "{text}"
    );
    assert!(text.contains("the target is offline"), "{text}");
    assert!(text.contains("the target has 3.9"), "{text}");

    // An arm64 target: what this x86_64 host builds for its own machine does not fit.
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "these tests run on x86_64 hosts"
    );
    let output = advise("arm64,glibc2.99,docker,python3.11,pip", &[]);
    let text = stdout(&output);
    let frozen = text.lines().find(|l| l.contains(" frozen ")).unwrap();
    assert!(
        frozen.starts_with("no")
            && frozen.contains("needs an x86_64 machine; the target is aarch64"),
        "{text}"
    );
    assert!(
        text.contains("best fit: gradient build --to wheel"),
        "{text}"
    );

    let output = advise("kubernetes", &[]);
    fails_with(
        &output,
        2,
        &["`--has kubernetes`", "known values are", "glibcX.Y"],
    );
}

#[test]
fn plan_lists_the_tiers_with_their_inputs_and_emits_a_ci_matrix() {
    let output = run(gradient()
        .args(["plan", "--to", "zipapp,wheel", "--format", "github-matrix"])
        .arg(fixture("sampleapp")));
    assert!(output.status.success());
    let matrix: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        matrix,
        serde_json::json!({"include": [
            {"tier": "wheel", "platform": "linux/amd64"},
            {"tier": "zipapp", "platform": "linux/amd64"}
        ]}),
        "one job per tier, along the gradient"
    );
    // A SOURCE_DATE_EPOCH that build refuses, plan refuses too.
    let output = run(gradient()
        .args(["plan", "--to", "wheel"])
        .arg(fixture("sampleapp"))
        .env("SOURCE_DATE_EPOCH", "abc"));
    fails_with(
        &output,
        2,
        &["SOURCE_DATE_EPOCH=`abc` is not a whole number"],
    );
    // No tier to build makes an empty matrix, which GitHub refuses: said here, exit 1.
    // (An interpreter for linux/aarch64 builds no frozen executable on this host.)
    let scratch = tempfile::tempdir().unwrap();
    let cross = scratch.path().join("python3-aarch64");
    std::fs::write(
        &cross,
        "#!/bin/sh\n_PYTHON_HOST_PLATFORM=linux-aarch64 exec python3.11 \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cross, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = run(gradient()
        .args([
            "plan",
            "--to",
            "frozen",
            "--format",
            "github-matrix",
            "--python",
        ])
        .arg(&cross)
        .arg(fixture("sampleapp")));
    fails_with(&output, 1, &["a GitHub job matrix cannot be empty"]);

    // After a build, the plan knows the output folder's files are cached.
    let out = tempfile::tempdir().unwrap();
    assert!(build(
        &fixture("sampleapp"),
        out.path(),
        &["--no-smoke", "--to", "zipapp"]
    )
    .status
    .success());
    let output = run(gradient()
        .args(["plan", "--to", "zipapp,frozen", "--out"])
        .arg(out.path())
        .arg(fixture("sampleapp")));
    assert!(output.status.success());
    let text = stdout(&output);
    let zipapp = text.lines().find(|l| l.starts_with("zipapp")).unwrap();
    assert!(
        zipapp.contains("wheelhouse") && zipapp.contains("wheel"),
        "{text}"
    );
    assert!(zipapp.contains("sampleapp-1.2.3.pyz cached"), "{text}");
    let frozen = text.lines().find(|l| l.starts_with("frozen")).unwrap();
    assert!(
        frozen.contains("runtime") && frozen.contains("not cached"),
        "{text}"
    );

    // The shared inputs too: nothing is cached in a fresh cache; after a build, the wheel
    // and the installed wheelhouse are, and the runtime (not built) still is not.
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let plan = || {
        let output = run(gradient()
            .args(["plan", "--to", "zipapp,frozen", "--format", "json", "--out"])
            .arg(out.path())
            .arg(fixture("sampleapp"))
            .env("GRADIENT_CACHE_DIR", cache.path()));
        assert!(output.status.success(), "{}", stderr(&output));
        let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        plan.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["tier"].as_str().unwrap().to_string(),
                    t["cached_inputs"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    for (_, cached) in plan() {
        assert_eq!(cached, serde_json::json!([]));
    }
    let built = run(gradient()
        .args(["build", "--no-smoke", "--to", "zipapp", "--out"])
        .arg(out.path())
        .arg(fixture("sampleapp"))
        .env("GRADIENT_CACHE_DIR", cache.path()));
    assert!(built.status.success(), "{}", stderr(&built));
    let after = plan();
    assert_eq!(after[0].0, "zipapp");
    assert_eq!(after[0].1, serde_json::json!(["wheelhouse", "wheel"]));
    assert_eq!(after[1].0, "frozen");
    assert_eq!(
        after[1].1,
        serde_json::json!(["wheelhouse", "wheel"]),
        "no runtime yet"
    );
}

#[test]
fn platforms_are_read_checked_and_laid_out_as_each_tier_builds_for_them() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "this test names linux/arm64 as the foreign platform"
    );
    // A wheel serves every platform, and a zipapp is built once for all (one archive when
    // pure, one per platform when compiled): one entry each. A frozen executable is built
    // once per platform.
    let output = run(gradient()
        .args([
            "plan",
            "--to",
            "wheel,zipapp,frozen",
            "--platform",
            "arm64,linux/amd64",
            "--json",
        ])
        .arg(fixture("sampleapp")));
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let entries: Vec<(&str, Vec<&str>)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["tier"].as_str().unwrap(),
                e["platforms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    let both = vec!["linux/amd64", "linux/arm64"];
    assert_eq!(
        entries,
        [
            ("wheel", both.clone()),
            ("zipapp", both.clone()),
            ("frozen", vec!["linux/amd64"]),
            ("frozen", vec!["linux/arm64"]),
        ]
    );
    let files: Vec<&str> = plan[3]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["sampleapp-1.2.3-linux-aarch64"]);
    // The cache holds the host's inputs, not the other platform's.
    assert_eq!(plan[3]["cached_inputs"], serde_json::json!([]));
    assert!(plan[3]["last_build_cached"].is_null());
    // The matrix: one job per entry, each with the platforms it builds for, as --platform
    // takes them.
    let output = run(gradient()
        .args([
            "plan",
            "--to",
            "wheel,frozen",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .args(["--format", "github-matrix"])
        .arg(fixture("sampleapp")));
    assert!(output.status.success());
    let matrix: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        matrix,
        serde_json::json!({"include": [
            {"tier": "wheel", "platform": "linux/amd64,linux/arm64"},
            {"tier": "frozen", "platform": "linux/amd64"},
            {"tier": "frozen", "platform": "linux/arm64"},
        ]})
    );

    let out = tempfile::tempdir().unwrap();
    // An unknown one, with the list of known ones.
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &["--to", "wheel", "--platform", "linux/riscv64"],
    );
    fails_with(
        &output,
        2,
        &["unknown platform `linux/riscv64`: gradient knows linux/amd64, linux/arm64"],
    );

    // `[tool.gradient] platforms`: read as the flag is, refused with its line when wrong.
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("sampleapp"), project.path());
    let pyproject = project.path().join("pyproject.toml");
    let original = std::fs::read_to_string(&pyproject).unwrap();
    let with = |line: &str| {
        let text = original.replacen("[tool.gradient]", &format!("[tool.gradient]\n{line}"), 1);
        assert_ne!(text, original, "the fixture has a [tool.gradient] table");
        std::fs::write(&pyproject, text).unwrap();
    };
    with("platforms = [\"linux/arm64\"]");
    let output = run(gradient()
        .args(["plan", "--to", "wheel", "--json"])
        .arg(project.path()));
    assert!(output.status.success());
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan[0]["platforms"], serde_json::json!(["linux/arm64"]));
    with("platforms = [\"linux/sparc\"]");
    let output = run(gradient()
        .args(["plan", "--to", "wheel"])
        .arg(project.path()));
    fails_with(
        &output,
        2,
        &["pyproject.toml", "linux/sparc", "linux/amd64"],
    );
    with("platforms = []");
    let output = run(gradient()
        .args(["plan", "--to", "wheel"])
        .arg(project.path()));
    fails_with(&output, 2, &["`platforms` in [tool.gradient] is empty"]);
}
