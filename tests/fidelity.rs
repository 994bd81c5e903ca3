//! Real apps run from every tier as from a venv: the behaviours that broke real
//! applications (issue 23), each on a fixture that does what those apps did.

use crate::util::*;

#[test]
fn locale_device_files_and_tmp_work_in_the_image_and_the_package_roots() {
    // sysapp sets the locale from LANG=C.UTF-8, writes /dev/null, reads /dev/urandom and
    // writes in /tmp: the scratch image lacked the locale's files, and the roots the deb,
    // rpm and image are checked in had no /dev/null.
    let tiers = if require("rpm") {
        "wheel,zipapp,frozen,oci,deb,rpm"
    } else {
        "wheel,zipapp,frozen,oci,deb"
    };
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", tiers])
        .arg(fixture("system-app"))
        .arg("--out")
        .arg(out.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), tiers.split(',').count());
    for artifact in artifacts {
        assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
    }
}

#[test]
fn an_apps_own_c_extension_passes_the_sdist_check_and_a_missing_file_is_named() {
    // The wheels built from the sdist and from the tree differ in the extension's debug
    // info (each names its build folder): that is not an incomplete sdist.
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", "sdist,wheel,zipapp,frozen"])
        .arg(fixture("cext-app"))
        .arg("--out")
        .arg(out.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let sdist = &manifest["artifacts"][0];
    assert_eq!(sdist["tier"], "sdist", "{sdist}");
    let detail = sdist["smoke"]["checks"][1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("byte-identical") || detail.contains("`cext/_fib.cpython-"),
        "{detail}"
    );

    // A Python file the sdist leaves out is named, with what to do.
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("cext-app"), project.path());
    std::fs::write(project.path().join("src/cext/extra.py"), "X = 1\n").unwrap();
    std::fs::write(
        project.path().join("MANIFEST.in"),
        "exclude src/cext/extra.py\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", "sdist"])
        .arg(project.path())
        .arg("--out")
        .arg(out.path()));
    fails_with(
        &output,
        1,
        &["`cext/extra.py` is only in the wheel built from the source tree: the sdist lacks"],
    );
}

#[test]
fn with_stdlib_sources_tracebacks_and_inspect_see_the_standard_library() {
    // Bytecode-only by default (measured: see STDLIB_SOURCES_BY_DEFAULT); with
    // `stdlib-sources = true` every bundled tier shows stdlib lines as a venv does.
    let tiers = if require("rpm") {
        "frozen,oci,deb,rpm"
    } else {
        "frozen,oci,deb"
    };
    let build = |sources: bool| {
        let project = tempfile::tempdir().unwrap();
        copy_tree(&fixture("system-app"), project.path());
        let pyproject = project.path().join("pyproject.toml");
        let text = std::fs::read_to_string(&pyproject).unwrap();
        let start = text.find("[tool.gradient.smoke]").unwrap();
        let answer = if sources { "yes" } else { "no" };
        std::fs::write(
            &pyproject,
            format!(
                "{}[tool.gradient.runtime]\nstdlib-sources = {sources}\n\n[tool.gradient.smoke]\ncommand = [\"sysapp\", \"sources\"]\nexpect = \"traceback lines {answer}; inspect {answer}\"\n",
                &text[..start]
            ),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let output = run(gradient()
            .args(["build", "--rebuild", "--to", tiers])
            .arg(project.path())
            .arg("--out")
            .arg(out.path()));
        assert!(output.status.success(), "{}", stderr(&output));
        let manifest = read_json(&out.path().join("gradient-manifest.json"));
        for artifact in manifest["artifacts"].as_array().unwrap() {
            assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
        }
    };
    build(true);
    build(false);
}
