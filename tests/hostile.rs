//! A hostile build backend (`fixtures/broken/hostile-backend`): archives with entries that
//! leave their install folder, console scripts that are not file names, metadata with line
//! breaks. gradient refuses each when it checks the wheel, names what it refused, and
//! publishes nothing.

use crate::util::*;
use std::path::Path;

/// A copy of the hostile fixture that performs `attack` (its `attack.json`, see the
/// fixture's README).
fn hostile(attack: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("broken/hostile-backend"), dir.path());
    std::fs::write(dir.path().join("attack.json"), attack.to_string()).unwrap();
    dir
}

/// Build `tiers` of `project` into a fresh output folder: the run fails with exit 1, says
/// each of `says`, and the output folder was never made.
fn refused(project: &Path, tiers: &str, says: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let output = run(gradient()
        .args(["build", "--to", tiers])
        .arg(project)
        .arg("--out")
        .arg(&out));
    fails_with(&output, 1, says);
    assert!(!out.exists(), "published: {:?}", listing(&out));
    stderr(&output)
}

#[test]
fn the_clean_hostile_fixture_builds() {
    let project = hostile(serde_json::json!({}));
    let dir = tempfile::tempdir().unwrap();
    let output = build(project.path(), &dir.path().join("dist"), &["--to", "wheel"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn wheel_entries_that_leave_the_install_folder_are_refused() {
    for entry in [
        "../../escaped.txt",
        "/tmp/gradient-hostile-absolute.txt",
        "hostile-1.0.0.data/data/../../escaped.txt",
        "hostile-1.0.0.data/../../escaped.txt",
        "hostile/..\\..\\escaped.txt",
    ] {
        let project = hostile(serde_json::json!({ "files": { entry: "escaped" } }));
        refused(
            project.path(),
            "wheel",
            &[&format!("`{entry}`"), "outside the folder it installs into"],
        );
    }
}

#[test]
fn console_scripts_that_are_not_file_names_are_refused() {
    // Enough `..` to reach `/` from wherever the smoke test makes its links.
    let outside = std::env::temp_dir().join(format!(
        "gradient-hostile-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let escaping = format!("{}{}", "../".repeat(32), outside.display());
    let project = hostile(serde_json::json!({ "scripts": { &escaping: "hostile:main" } }));
    let text = refused(
        project.path(),
        "wheel,zipapp",
        &[
            &format!("console script `{escaping}`"),
            "of `hostile`",
            "is not a safe file name",
        ],
    );
    let made = outside.symlink_metadata().is_ok();
    let _ = std::fs::remove_file(&outside);
    assert!(
        !made,
        "a file was made outside: {}\n{text}",
        outside.display()
    );

    for name in ["app;id", "$(id)", "-rf", "..", ".", "a b", "a\tb"] {
        let project = hostile(serde_json::json!({ "scripts": { name: "hostile:main" } }));
        refused(
            project.path(),
            "wheel",
            &[
                &format!("console script `{name}`"),
                "is not a safe file name",
            ],
        );
    }
}

#[test]
fn a_console_script_target_that_is_not_an_object_reference_is_refused() {
    let target = "hostile:main;__import__('os').system('id')";
    let project = hostile(serde_json::json!({ "scripts": { "hostile": target } }));
    refused(
        project.path(),
        "wheel",
        &[&format!("runs `{target}`"), "module:function"],
    );
}

#[test]
fn a_line_break_inside_a_metadata_field_is_refused() {
    for (line, field) in [
        ("Summary: one\rBreaks: libc6", "Summary"),
        (
            "Author-email: A <a@b.org>\rPre-Depends: evil",
            "Author-email",
        ),
        (
            "Home-page: https://x.invalid/\u{2028}Breaks: libc6",
            "Home-page",
        ),
        ("Version: 1.0.0\u{0}", "Version"),
    ] {
        let project = hostile(serde_json::json!({ "metadata": [line] }));
        refused(
            project.path(),
            "wheel",
            &[&format!(
                "`{field}` holds a line break or control character"
            )],
        );
    }
}
