//! `gradient tiers`, `gradient doctor` and `--help`.

use crate::util::*;

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
        rpm_line.contains("glibc") && rpm_line.contains("rpm") && rpm_line.contains("available"),
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
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("gradient-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest, on_disk);
}
