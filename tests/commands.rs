//! `gradient tiers`, `gradient doctor` and `--help`.

use crate::util::*;
use std::process::Command;

#[test]
fn tiers_lists_the_whole_gradient_in_order_with_what_targets_need() {
    let output = run(gradient().arg("tiers"));
    assert!(output.status.success());
    let text = stdout(&output);
    let positions: Vec<usize> = [
        "sdist", "wheel", "zipapp", "frozen", "oci", "docker", "deb", "rpm",
    ]
    .iter()
    .map(|tier| {
        text.find(&format!("\n{tier} "))
            .unwrap_or_else(|| panic!("{tier} missing:\n{text}"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "tiers out of order:\n{text}"
    );
    let wheel_line = text.lines().find(|l| l.starts_with("wheel ")).unwrap();
    assert!(
        wheel_line.contains("Python + pip") && wheel_line.contains("available"),
        "{wheel_line}"
    );
    let docker_line = text.lines().find(|l| l.starts_with("docker ")).unwrap();
    assert!(
        docker_line.contains("container engine") && docker_line.contains("available"),
        "{docker_line}"
    );
    let rpm_line = text.lines().find(|l| l.starts_with("rpm ")).unwrap();
    assert!(
        rpm_line.contains("glibc") && rpm_line.contains("+ rpm") && rpm_line.contains("available"),
        "{rpm_line}"
    );

    let json = run(gradient().args(["tiers", "--json"]));
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 8);
    assert_eq!(list[1]["tier"], "wheel");
    assert_eq!(list[1]["rung"], "python-and-installer");
    assert_eq!(list[1]["target_needs"]["installer"], true);
}

#[test]
fn doctor_reports_what_this_host_can_build() {
    let output = run(gradient().arg("doctor"));
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("build interpreter: cpython 3."), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("wheel") && l.contains("ready")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rpm") && l.contains("ready")),
        "{text}"
    );
    // The platforms: the host's is built and runs natively; the other is built and runs
    // only where an emulator is registered for it (and apt-get fetches its packages).
    let line = |platform: &str| {
        text.lines()
            .find(|l| l.starts_with(platform))
            .unwrap_or_default()
    };
    assert!(
        line("linux/amd64").contains("yes (the host's)")
            && line("linux/amd64").ends_with("natively"),
        "{text}"
    );
    let arm = line("linux/arm64");
    let emulated = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|t| t.starts_with("enabled"));
    assert_eq!(
        arm.contains("yes (from Debian's packages, under emulation)"),
        emulated,
        "{text}"
    );
    assert_eq!(
        arm.ends_with("under emulation (binfmt_misc: qemu-aarch64)"),
        emulated,
        "{text}"
    );
    if !emulated {
        assert!(arm.contains("no: needs its programs to run here"), "{text}");
    }
}

#[test]
fn build_help_teaches_the_options() {
    let output = run(gradient().args(["build", "--help"]));
    let text = stdout(&output);
    for needle in [
        "--to <TIER,...>",
        "--all",
        "--out <DIR>",
        "--python <PATH|X.Y>",
        "--direct",
        "--json",
        "gradient build --to sdist,wheel",
    ] {
        assert!(text.contains(needle), "{needle} missing from help:\n{text}");
    }
}

#[test]
fn json_prints_the_manifest_on_stdout_only() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--json", "--to", "wheel"])
        .arg(fixture("hatch-app"))
        .arg("--out")
        .arg(dir.path()));
    assert!(output.status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(manifest["artifacts"][0]["tier"], "wheel");
    assert_eq!(manifest["python"]["implementation"], "cpython");
    let on_disk: serde_json::Value = read_json(&dir.path().join("gradient-manifest.json"));
    assert_eq!(manifest, on_disk);
}

/// `gradient compare --peers --no-smoke --json --to TIERS` with `path` as PATH and `env`.
fn compare_peers(
    project: &std::path::Path,
    out: &std::path::Path,
    tiers: &str,
    path: Vec<std::path::PathBuf>,
    env: &[(&str, &str)],
) -> std::process::Output {
    run(gradient()
        .args(["compare", "--peers", "--no-smoke", "--json", "--to", tiers])
        .arg(project)
        .arg("--out")
        .arg(out)
        .env("PATH", std::env::join_paths(path).unwrap())
        .envs(env.iter().copied()))
}

#[test]
fn compare_with_peers_times_gradient_and_the_reference_tools_side_by_side() {
    if !require("uv") || !require_python_module("build") {
        return;
    }
    let project = sample_with("");
    let out = tempfile::tempdir().unwrap();
    // No shiv or pex on this PATH: the zipapp's peers are listed with the reason.
    let path: Vec<std::path::PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .filter(|dir| !dir.join("shiv").exists() && !dir.join("pex").exists())
        .collect();
    let output = compare_peers(project.path(), out.path(), "sdist,wheel,zipapp", path, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let on_disk: serde_json::Value = read_json(&out.path().join("compare.json"));
    assert_eq!(doc, on_disk);
    assert_eq!(doc["schema_version"], 1);
    let seconds = doc["gradient"]["seconds"].as_f64().unwrap();
    assert!(seconds > 0.0);
    assert!(doc["gradient"]["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);

    let peers = doc["peers"].as_array().unwrap();
    let names: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["python -m build", "uv build", "shiv", "pex"]);
    let mut sum = 0.0;
    for peer in &peers[..2] {
        assert_eq!(peer["status"], "built", "{peer}");
        let files: Vec<&str> = peer["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file"].as_str().unwrap())
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".tar.gz")), "{files:?}");
        assert!(files.iter().any(|f| f.ends_with(".whl")), "{files:?}");
        for file in files {
            assert!(out.path().join(file).is_file(), "{file}");
        }
        sum += peer["seconds"].as_f64().unwrap();
    }
    for peer in &peers[2..] {
        assert_eq!(peer["status"], "unavailable", "{peer}");
        assert!(
            peer["reason"].as_str().unwrap().contains("is not on PATH"),
            "{peer}"
        );
    }
    assert!((doc["peers_seconds"].as_f64().unwrap() - sum).abs() < 1e-6);
    assert!((doc["ratio"].as_f64().unwrap() - seconds / sum).abs() < 1e-6);

    let markdown = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
    assert!(
        markdown.contains("| uv build | sdist,wheel |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| gradient | zipapp | sampleapp-1.2.3.pyz |"),
        "{markdown}"
    );
    // A warm gradient against cold tools: the totals say so.
    assert!(
        markdown.contains("--cold times it on an empty cache"),
        "{markdown}"
    );
}

#[test]
fn a_failing_peer_leaves_its_previous_result_and_nothing_half_written() {
    let project = sample_with("");
    let out = tempfile::tempdir().unwrap();
    // A `uv` that writes part of a wheel and fails. gradient itself installs with pip
    // here, so that only the `uv build` peer meets the fake.
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("uv");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'uv 0.0.1'; exit 0; }\n\
         [ \"$1\" = build ] || { echo \"fake uv: unexpected $*\" >&2; exit 3; }\n\
         while [ $# -gt 0 ]; do [ \"$1\" = --out-dir ] && out=$2; shift; done\n\
         echo half > \"$out/half.whl\"; echo 'uv: disk full' >&2; exit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let previous = out.path().join("peers/uv-build");
    std::fs::create_dir_all(&previous).unwrap();
    std::fs::write(previous.join("sampleapp-1.2.3-py3-none-any.whl"), "whole").unwrap();
    // What a run killed mid-peer leaves: its staging folder.
    let killed = out.path().join("peers/.uv-build-a1B2c3");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("half.whl"), "half").unwrap();
    let mut path = vec![bin.path().to_path_buf()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    let output = compare_peers(
        project.path(),
        out.path(),
        "wheel",
        path,
        &[("GRADIENT_INSTALLER", "pip")],
    );
    assert!(
        !stderr(&output).contains("fake uv: unexpected"),
        "{}",
        stderr(&output)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let uv = doc["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "uv build")
        .unwrap();
    assert_eq!(uv["status"], "failed", "{uv}");
    assert!(uv["reason"].as_str().unwrap().contains("disk full"), "{uv}");
    assert_eq!(
        listing(&previous),
        ["sampleapp-1.2.3-py3-none-any.whl"],
        "the previous result stays whole"
    );
    let leftovers: Vec<String> = listing(&out.path().join("peers"))
        .into_iter()
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no staging folder is left, the killed run's neither: {leftovers:?}"
    );
}

#[test]
fn progress_is_drawn_live_on_a_terminal_and_as_plain_lines_elsewhere() {
    if !require("script") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let command = format!(
        "{} build --to wheel --no-smoke --rebuild --out {} {}",
        env!("CARGO_BIN_EXE_gradient"),
        out.path().display(),
        fixture("sampleapp").display()
    );
    // `script` gives the run a terminal: live lines, redrawn with escape sequences.
    let terminal = run(Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("CI"));
    assert!(terminal.status.success(), "{}", stdout(&terminal));
    let text = stdout(&terminal);
    assert!(text.contains("\u{1b}[2K"), "lines are redrawn: {text:?}");
    assert!(
        text.contains("wheel: wrote sampleapp-1.2.3-py3-none-any.whl"),
        "{text}"
    );
    assert!(text.contains("TIER "), "the table follows: {text}");
    // Through a pipe: plain lines, no escape sequence.
    let piped = run(Command::new("sh").args(["-c", &command]));
    assert!(piped.status.success());
    let log = stderr(&piped);
    assert!(!log.contains('\u{1b}'), "{log:?}");
    assert!(
        log.contains("  wheel: wrote sampleapp-1.2.3-py3-none-any.whl ("),
        "{log}"
    );
}
