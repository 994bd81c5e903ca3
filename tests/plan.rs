//! `gradient plan` names every file before anything is built, and `build` writes exactly
//! those files: a setuptools app, a hatchling one, and one with a C extension (whose wheel
//! is tagged for this interpreter and platform).

use crate::util::*;
use std::collections::BTreeSet;

#[test]
fn build_writes_exactly_the_files_plan_listed() {
    let require_docker = std::env::var("GRADIENT_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    for project in ["sampleapp", "hatch-app", "cext-app"] {
        let out = tempfile::tempdir().unwrap();
        let output = run(gradient()
            .args(["plan", "--all", "--json", "--out"])
            .arg(out.path())
            .arg(fixture(project)));
        assert!(output.status.success(), "{}", stderr(&output));
        let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        let mut planned = BTreeSet::new();
        let mut buildable = 0;
        for tier in plan.as_array().unwrap() {
            let name = tier["tier"].as_str().unwrap();
            if !tier["unavailable"].is_null() {
                assert!(
                    !(require_docker && name == "docker"),
                    "{project}: docker is unavailable: {}",
                    tier["unavailable"]
                );
                continue;
            }
            buildable += 1;
            let artifacts = tier["artifacts"].as_array().unwrap();
            assert!(!artifacts.is_empty(), "{project}: {name} names no file");
            for artifact in artifacts {
                assert!(
                    tier["files"]
                        .as_array()
                        .unwrap()
                        .contains(&artifact["name"]),
                    "{project}: {name}: {tier}"
                );
            }
            for file in tier["files"].as_array().unwrap() {
                planned.insert(file.as_str().unwrap().to_string());
            }
        }
        assert!(buildable >= 6, "{project}: {plan}");
        planned.extend(
            [
                "gradient-manifest.json",
                "SHA256SUMS",
                "report.json",
                "report.md",
                "report.html",
            ]
            .map(String::from),
        );

        let output = run(gradient()
            .args(["build", "--all", "--no-smoke", "--out"])
            .arg(out.path())
            .arg(fixture(project)));
        assert!(output.status.success(), "{}", stderr(&output));
        let written: BTreeSet<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            written, planned,
            "{project}: what build wrote, what plan listed"
        );
    }
}
