//! No secret leaves the machine: a run with a token and an index password in its
//! environment, failing at each step that runs a tool, leaves neither in any message, log
//! line or output file.

use crate::util::*;
use std::io::{Read, Write};
use std::path::Path;

const TOKEN: &str = "tok-5e1f0a9c77d2";
const PASSWORD: &str = "pw-c0ffee4242";

/// A package index on 127.0.0.1 that has nothing: every request gets 404.
fn empty_index() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

/// `gradient build --to TIERS PROJECT --out OUT` with the secrets in its environment, at
/// the most verbose level.
fn run_with_secrets(port: u16, tiers: &str, project: &Path, out: &Path) -> std::process::Output {
    let index = format!("http://alice:{PASSWORD}@127.0.0.1:{port}/simple");
    // --rebuild: the backend runs (and echoes its environment) even when an earlier test
    // left its wheel in the shared cache; --direct: the leaky backend makes no sdist.
    run(gradient()
        .args(["-vv", "build", "--rebuild", "--direct", "--to", tiers])
        .arg(project)
        .arg("--out")
        .arg(out)
        .env("FOO_TOKEN", TOKEN)
        .env("UV_INDEX_URL", &index)
        .env("PIP_INDEX_URL", &index)
        .env("UV_HTTP_RETRIES", "0"))
}

/// Neither secret is in the output nor in any file under `out`.
fn leaves_no_secret(output: &std::process::Output, out: &Path) {
    for (what, text) in [("stdout", stdout(output)), ("stderr", stderr(output))] {
        for secret in [TOKEN, PASSWORD] {
            assert!(!text.contains(secret), "{what} holds a secret:\n{text}");
        }
    }
    for entry in walkdir::WalkDir::new(out).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for secret in [TOKEN, PASSWORD] {
                assert!(
                    !text.contains(secret),
                    "{} holds a secret",
                    entry.path().display()
                );
            }
        }
    }
}

fn leaky_project() -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("broken/leaky-backend"), project.path());
    project
}

#[test]
fn unsatisfiable_build_requirements_leave_no_secret() {
    let port = empty_index();
    let project = leaky_project();
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("requires = []", "requires = [\"gradient-no-such-backend\"]"),
    )
    .unwrap();
    let out = project.path().join("dist");
    let output = run_with_secrets(port, "wheel", project.path(), &out);
    fails_with(&output, 1, &["gradient-no-such-backend"]);
    // The command is shown as a program and its arguments, never with an environment.
    assert!(!stderr(&output).contains("env -i"), "{}", stderr(&output));
    leaves_no_secret(&output, &out);
}

#[test]
fn a_failing_backend_that_echoes_its_environment_leaves_no_secret() {
    let port = empty_index();
    let project = leaky_project();
    std::fs::write(project.path().join("FAIL"), "").unwrap();
    let out = project.path().join("dist");
    let output = run_with_secrets(port, "wheel", project.path(), &out);
    fails_with(&output, 1, &["the build failed on purpose"]);
    // The backend did print the variables (masked): the check above is not vacuous.
    assert!(
        stderr(&output).contains("FOO_TOKEN=***"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains(&format!("alice:***@127.0.0.1:{port}")));
    leaves_no_secret(&output, &out);
    // The backend's whole output, kept in the cache's logs, is masked too.
    let text = stderr(&output);
    let log = text
        .split("the backend's whole output is in `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the error names the backend's log");
    let logged = std::fs::read_to_string(log).unwrap();
    assert!(logged.contains("FOO_TOKEN=***"), "{logged}");
    for secret in [TOKEN, PASSWORD] {
        assert!(!logged.contains(secret), "{log} holds a secret");
    }
}

#[test]
fn an_unresolvable_dependency_leaves_no_secret_in_output_or_manifest() {
    let port = empty_index();
    let project = leaky_project();
    let out = project.path().join("dist");
    let output = run_with_secrets(port, "wheel,zipapp", project.path(), &out);
    fails_with(&output, 1, &["gradient-no-such-dist"]);
    assert!(
        stderr(&output).contains("FOO_TOKEN=***"),
        "{}",
        stderr(&output)
    );
    leaves_no_secret(&output, &out);
}

#[test]
fn a_failing_smoke_install_leaves_no_secret_in_output_or_manifest() {
    // --to wheel alone: the wheel is published, and its smoke test installs it with its
    // dependencies from the (empty) index, which fails inside the smoke test: the failure's
    // text goes into the manifest and the reports.
    let port = empty_index();
    let project = leaky_project();
    let out = project.path().join("dist");
    let output = run_with_secrets(port, "wheel", project.path(), &out);
    fails_with(
        &output,
        1,
        &["smoke test of leaky_backend-0.1.0-py3-none-any.whl failed"],
    );
    let manifest = read_json(&out.join("gradient-manifest.json"));
    assert_eq!(manifest["artifacts"][0]["smoke"]["passed"], false);
    leaves_no_secret(&output, &out);
}

#[test]
fn a_dependency_url_with_credentials_is_refused_before_the_lock_publishes_it() {
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace(
            "\"msgpack>=1.0\",",
            &format!("\"msgpack>=1.0\",\n    \"extra-dep @ https://alice:{PASSWORD}@127.0.0.1:9/extra_dep-1.0-py3-none-any.whl\","),
        ),
    )
    .unwrap();
    let out = project.path().join("dist");
    let output = run(gradient()
        .args(["build", "--to", "zipapp", "--no-smoke"])
        .arg(project.path())
        .arg("--out")
        .arg(&out));
    fails_with(
        &output,
        1,
        &[
            "`extra-dep @ https://alice:***@127.0.0.1:9/",
            "carries credentials in its URL",
        ],
    );
    leaves_no_secret(&output, &out);
}
