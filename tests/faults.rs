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
