//! The differential smoke test catches broken artifacts: each test builds a tier without
//! smoke tests, breaks the artifact the tier cache then holds (as a rewritten cache would,
//! its recorded digest updated), builds again (which smoke-tests the cached artifact) and
//! checks that the smoke test fails and names what differs from the reference venv.

use crate::util::*;
use std::path::{Path, PathBuf};

/// A copy of `fixture` whose description says `tag`, so that its artifacts (whose metadata
/// carries it) and their tier cache entries are this test's alone.
fn own_copy(fixture_name: &str, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(fixture_name), dir.path());
    let pyproject = dir.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    assert!(text.contains("\ndescription = \""), "{text}");
    let text = text.replacen(
        "\ndescription = \"",
        &format!("\ndescription = \"(differential test: {tag}) "),
        1,
    );
    std::fs::write(&pyproject, text).unwrap();
    dir
}

/// Build `tier` of `project` afresh without smoke tests, let `break_it` change the cached artifact
/// (its file, and its record in the cache entry), then build again: the smoke test runs
/// on the broken artifact and must fail. Returns the failed checks, `(command, detail)`.
fn smoke_of_broken(
    project: &Path,
    tier: &str,
    break_it: impl FnOnce(&Path, &mut serde_json::Value),
) -> Vec<(String, String)> {
    let first = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--no-smoke", "--to", tier])
        .arg(project)
        .arg("--out")
        .arg(first.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&first.path().join("gradient-manifest.json"));
    let built = &manifest["artifacts"][0];
    let (file, digest) = (
        built["file"].as_str().unwrap(),
        built["sha256"].as_str().unwrap(),
    );

    // The cache entry that holds this very file: the newest of them (an entry stored by an
    // earlier build of gradient may hold the same bytes).
    let tiers = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gradient-cache/tiers");
    let entry: PathBuf = std::fs::read_dir(&tiers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|dir| {
            let path = dir.join(file);
            path.is_file() && sha256_file(&path) == digest
        })
        .max_by_key(|dir| {
            std::fs::metadata(dir.join("entry.json"))
                .and_then(|m| m.modified())
                .unwrap()
        })
        .unwrap_or_else(|| panic!("no cache entry in {} holds {file}", tiers.display()));
    let entry_json = entry.join("entry.json");
    let mut recorded = read_json(&entry_json);
    let record = recorded["records"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["file"] == file)
        .unwrap();
    let artifact = entry.join(file);
    break_it(&artifact, record);
    record["sha256"] = sha256_file(&artifact).into();
    record["size"] = std::fs::metadata(&artifact).unwrap().len().into();
    std::fs::write(&entry_json, serde_json::to_vec_pretty(&recorded).unwrap()).unwrap();

    let second = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", tier])
        .arg(project)
        .arg("--out")
        .arg(second.path()));
    assert!(
        !output.status.success(),
        "the broken artifact passed its smoke test"
    );
    let manifest = read_json(&second.path().join("gradient-manifest.json"));
    let smoke = &manifest["artifacts"][0]["smoke"];
    assert_eq!(smoke["passed"], false, "{smoke}");
    smoke["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            (
                c["command"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The failed check that compared with the reference venv: its detail.
fn reference_check(failed: &[(String, String)]) -> &str {
    failed
        .iter()
        .find(|(command, _)| command.starts_with("as in the reference venv"))
        .map(|(_, detail)| detail.as_str())
        .unwrap_or_else(|| {
            panic!("the comparison with the reference venv did not fail: {failed:?}")
        })
}

/// Rewrite a gradient zipapp without the entries `drop` selects, its `#!` line kept and its
/// closing digest (the archive's comment) computed again, as gradient writes it.
fn rewrite_zipapp(path: &Path, drop: &str) {
    let script = r#"
import hashlib, io, re, sys, zipfile
path, drop = sys.argv[1], re.compile(sys.argv[2])
data = open(path, "rb").read()
prefix = data[: data.index(b"PK\x03\x04")]
source = zipfile.ZipFile(io.BytesIO(data))
out = io.BytesIO()
out.write(prefix)
with zipfile.ZipFile(out, "w") as target:
    for info in source.infolist():
        if not drop.search(info.filename):
            target.writestr(info, source.read(info))
    target.comment = b"0" * 64
body = out.getvalue()[:-64]
open(path, "wb").write(body + hashlib.sha256(body).hexdigest().encode())
"#;
    let status = std::process::Command::new(host_python())
        .args(["-I", "-c", script])
        .arg(path)
        .arg(drop)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_zipapp_without_its_metadata_fails_the_smoke_test_naming_the_distribution() {
    let project = own_copy("plugin-app", "metadata");
    let failed = smoke_of_broken(project.path(), "zipapp", |pyz, _| {
        rewrite_zipapp(pyz, r"\.dist-info/")
    });
    let detail = reference_check(&failed);
    assert!(
        detail.contains("importlib.metadata: plugapp 2.0.1 is not listed"),
        "{detail}"
    );
}

#[test]
fn a_zipapp_without_folder_entries_fails_the_smoke_test_naming_the_namespace_package() {
    let project = own_copy("plugin-app", "namespace");
    let failed = smoke_of_broken(project.path(), "zipapp", |pyz, _| {
        rewrite_zipapp(pyz, r"/$")
    });
    let detail = reference_check(&failed);
    assert!(
        detail.contains("import plugapp_ns.shapes: ModuleNotFoundError"),
        "{detail}"
    );
}

#[test]
fn a_package_whose_needs_leave_out_libstdcxx_fails_the_smoke_test_naming_the_import() {
    let project = own_copy("cxx-app", "system-library");
    // The check root is made with the libraries the package's needs name: without
    // libstdc++ there, as on a target that lacks it, the C++ extension cannot load.
    let failed = smoke_of_broken(project.path(), "deb", |_, record| {
        record["target_needs"]["libraries"] = serde_json::json!(["libgcc_s.so.1"]);
    });
    let detail = reference_check(&failed);
    assert!(detail.contains("import murmurhash"), "{detail}");
    assert!(detail.contains("libstdc++.so.6"), "{detail}");
}

#[test]
fn a_package_whose_script_runs_python_with_i_loses_the_standard_library_and_fails() {
    let project = own_copy("venv-like-app", "stdlib-path");
    // `-I` instead of `-Es` on the script's #! line, and no second entry for the standard
    // library's zip: sys.path[0] is then that zip, and the script drops it, as in the
    // first frozen and package tiers.
    let failed = smoke_of_broken(project.path(), "deb", |deb, _| {
        let unpacked = tempfile::tempdir().unwrap();
        let tree = unpacked.path().join("tree");
        let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success());
        ok(std::process::Command::new("dpkg-deb")
            .arg("-R")
            .arg(deb)
            .arg(&tree));
        let script = tree.join("usr/bin/venvlike");
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            text.starts_with("#!") && text.lines().next().unwrap().ends_with(" -Es"),
            "{text}"
        );
        let broken: String = text
            .replacen(" -Es\n", " -I\n", 1)
            .lines()
            .filter(|line| !line.starts_with("sys.path.append("))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_ne!(broken.lines().count(), text.lines().count(), "{text}");
        std::fs::write(&script, broken).unwrap();
        ok(std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&tree)
            .arg(deb));
    });
    // The probe loads the script's module, which drops sys.path[0], then imports standard
    // modules not loaded yet; so does the app's own command.
    let detail = reference_check(&failed);
    assert!(
        detail.contains("(standard library, after the app's imports): ModuleNotFoundError"),
        "{detail}"
    );
    let (command, detail) = failed
        .iter()
        .find(|(command, _)| command.starts_with("venvlike check"))
        .unwrap_or_else(|| panic!("the app's own command did not fail: {failed:?}"));
    assert!(
        detail.contains("ModuleNotFoundError"),
        "{command}: {detail}"
    );
}
