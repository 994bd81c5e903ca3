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
fn console_scripts_see_a_venvs_sys_path_and_a_working_sys_executable() {
    // venvlike drops sys.path[0] and then imports standard modules, runs sys.executable
    // with -c and -m, computes in spawn and forkserver pools and makes a venv from
    // sys.executable: the bundled interpreter ran with -I, which put the standard-library
    // zip at sys.path[0], and the frozen app's sys.executable was not a usable Python.
    let tiers = if require("rpm") {
        "wheel,zipapp,frozen,oci,deb,rpm"
    } else {
        "wheel,zipapp,frozen,oci,deb"
    };
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", tiers])
        .arg(fixture("venv-like-app"))
        .arg("--out")
        .arg(out.path()));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(
        artifacts.len(),
        tiers.split(',').count(),
        "{}",
        stderr(&output)
    );
    for artifact in artifacts {
        assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
    }
    assert!(output.status.success(), "{}", stderr(&output));
}
