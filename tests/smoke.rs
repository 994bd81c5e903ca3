//! `[tool.gradient.smoke]` beyond a command and its output: a server asked over HTTP on
//! 127.0.0.1 (in every tier, docker through a published port), standard input, and the
//! exit code the command must end with.

use crate::util::*;

/// `fixtures/serve-app` with `table` as its `[tool.gradient.smoke]`.
fn serveapp_with_smoke(table: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("serve-app"), dir.path());
    let pyproject = dir.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let (head, _) = text.split_once("[tool.gradient.smoke]").unwrap();
    std::fs::write(&pyproject, format!("{head}[tool.gradient.smoke]\n{table}")).unwrap();
    dir
}

/// Every tier that runs the app, with rpm and docker where this host has them (CI has).
fn running_tiers() -> String {
    let mut tiers = vec!["wheel", "zipapp", "frozen", "oci", "deb"];
    if require("rpm") {
        tiers.push("rpm");
    }
    if docker_engine() {
        tiers.push("docker");
    }
    tiers.join(",")
}

/// `build --rebuild --to TIERS`: the manifest, and whether the run passed.
fn build_tiers(project: &std::path::Path, tiers: &str) -> (bool, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", tiers])
        .arg(project)
        .arg("--out")
        .arg(out.path()));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    assert_eq!(
        manifest["artifacts"].as_array().unwrap().len(),
        tiers.split(',').count(),
        "{manifest}"
    );
    (output.status.success(), manifest)
}

/// Each artifact's check of the smoke command (`serveapp serve …` or `serveapp count`; the
/// image's entrypoint is the script, so docker shows only its arguments).
fn command_checks(manifest: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|artifact| {
            let check = artifact["smoke"]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| {
                    let command = c["command"].as_str().unwrap();
                    command.contains(" serve --port") || command.contains(" count")
                })
                .unwrap_or_else(|| panic!("no smoke command ran: {artifact}"))
                .clone();
            (artifact["tier"].as_str().unwrap().to_string(), check)
        })
        .collect()
}

#[test]
fn a_web_server_is_started_asked_over_http_and_stopped_in_every_tier() {
    let tiers = running_tiers();
    let (passed, manifest) = build_tiers(&fixture("serve-app"), &tiers);
    assert!(passed, "{manifest}");
    for (tier, check) in command_checks(&manifest) {
        assert_eq!(check["passed"], true, "{tier}: {check}");
        let detail = check["detail"].as_str().unwrap();
        assert!(
            detail.contains("answered HTTP 200 with `serveapp 0.4.0 ok`"),
            "{tier}: {detail}"
        );
    }
    let docker = command_checks(&manifest)
        .into_iter()
        .find(|(tier, _)| tier == "docker");
    if let Some((_, check)) = docker {
        assert!(
            check["command"].as_str().unwrap().contains("-p 127.0.0.1:"),
            "{check}"
        );
    }
    // Every server was stopped: nothing of the fixture is left running.
    let left = std::process::Command::new("pgrep")
        .args(["-f", "serveapp serve --port"])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "servers left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn a_server_that_answers_without_the_expected_text_fails_its_smoke_test() {
    let project = serveapp_with_smoke(
        "command = [\"serveapp\", \"serve\", \"--port\", \"{port}\"]\nhttp = \"/health\"\nexpect = \"serveapp 9.9 ok\"\n",
    );
    let (passed, manifest) = build_tiers(project.path(), "zipapp");
    assert!(!passed);
    let (_, check) = command_checks(&manifest).remove(0);
    assert_eq!(check["passed"], false, "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("answered HTTP 200 without `serveapp 9.9 ok` in its body"),
        "{check}"
    );
}

#[test]
fn standard_input_and_the_expected_exit_code_reach_the_command_in_every_tier() {
    let project = serveapp_with_smoke(
        "command = [\"serveapp\", \"count\"]\nstdin = \"one two three\\n\"\nexpect = \"3 words\"\nexpect_exit = 3\n",
    );
    let tiers = running_tiers();
    let (passed, manifest) = build_tiers(project.path(), &tiers);
    assert!(passed, "{manifest}");
    for (tier, check) in command_checks(&manifest) {
        assert_eq!(check["passed"], true, "{tier}: {check}");
        assert_eq!(check["exit_code"], 3, "{tier}: {check}");
    }
}

#[test]
fn an_exit_code_other_than_the_expected_one_fails_the_smoke_test() {
    let project = serveapp_with_smoke(
        "command = [\"serveapp\", \"count\"]\nstdin = \"one two\\n\"\nexpect = \"2 words\"\n",
    );
    let (passed, manifest) = build_tiers(project.path(), "wheel");
    assert!(!passed);
    let (_, check) = command_checks(&manifest).remove(0);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("expected exit code 0"),
        "{check}"
    );
}

/// `serve-app` with `table` as its smoke settings is refused before anything is built, at
/// its place in pyproject.toml, saying `says`.
fn refused_smoke(table: &str, says: &str) {
    let project = serveapp_with_smoke(table);
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "wheel"])
        .arg(project.path())
        .arg("--out")
        .arg(out.path()));
    fails_with(&output, 2, &["pyproject.toml:", says]);
}

#[test]
fn a_server_command_must_say_where_its_port_goes() {
    refused_smoke(
        "command = [\"serveapp\", \"serve\", \"--port\", \"8000\"]\nhttp = \"/health\"\n",
        "put `{port}` where the port goes",
    );
}

#[test]
fn a_server_command_with_standard_input_or_an_exit_code_is_refused() {
    refused_smoke(
        "command = [\"serveapp\", \"serve\", \"--port\", \"{port}\"]\nhttp = \"/health\"\nstdin = \"x\"\n",
        "a server (`http`) gets no `stdin`",
    );
}
