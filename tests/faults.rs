//! Unlucky environments: the caller's umask, a temporary folder with URL syntax in its name
//! or mounted noexec, an engine that went away. Each gets a working build or a clear error.

use crate::util::*;

#[test]
fn a_temporary_folder_named_with_url_syntax_builds() {
    // `#` starts a URL's fragment and `%` an escape: the folder's name must reach the
    // resolver as a path, not as hand-made URL text.
    let tmp = tempfile::tempdir().unwrap();
    let odd = tmp.path().join("we#ird 50%2F");
    std::fs::create_dir(&odd).unwrap();
    let out = tmp.path().join("out");
    let output = run(gradient()
        .args(["build", "--to", "zipapp", "--no-smoke"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&out)
        .env("TMPDIR", &odd));
    assert!(output.status.success(), "{}", stderr(&output));
    only_file(&out, ".pyz");
}

/// `gradient` started by `sh -c "SETUP && exec gradient ARGS"` (behind `wrapper`, e.g.
/// `unshare --mount`), with the test harness's environment.
fn gradient_after(wrapper: &[&str], setup: &str) -> std::process::Command {
    let harness = gradient();
    let (program, wrapper_rest) = match wrapper.split_first() {
        Some((first, rest)) => (*first, rest),
        None => ("sh", &[][..]),
    };
    let mut command = std::process::Command::new(program);
    command.args(wrapper_rest);
    if !wrapper.is_empty() {
        command.arg("sh");
    }
    command
        .arg("-c")
        .arg(format!("{setup} && exec \"$0\" \"$@\""))
        .arg(harness.get_program());
    for (key, value) in harness.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
}

#[test]
fn a_strict_umask_does_not_fail_correct_artifacts() {
    // The smoke tests unpack the image and install the rpm into roots they then enter as an
    // unprivileged user: folders made under the caller's `umask 027` locked that user out.
    if !require("rpm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output = run(gradient_after(&[], "umask 027")
        .args(["build", "--to", "oci,rpm", "--rebuild"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("Permission denied"));
}

#[test]
fn a_noexec_temporary_folder_is_named_before_any_work() {
    // A tmpfs mounted noexec in a mount namespace of its own, so nothing is left mounted.
    let tmp = tempfile::tempdir().unwrap();
    let noexec = tmp.path().join("noexec");
    std::fs::create_dir(&noexec).unwrap();
    let out = tmp.path().join("out");
    let output = run(gradient_after(
        &["unshare", "--mount"],
        "mount -t tmpfs -o noexec tmpfs \"$TMPDIR\"",
    )
    .args(["build", "--to", "wheel,frozen"])
    .arg(fixture("sampleapp"))
    .arg("--out")
    .arg(&out)
    .env("TMPDIR", &noexec));
    fails_with(
        &output,
        2,
        &[
            &format!(
                "the temporary folder `{}` cannot run programs",
                noexec.display()
            ),
            "hint: set TMPDIR",
        ],
    );
    assert!(
        !out.exists(),
        "the output folder was made: {:?}",
        listing(&out)
    );
}
