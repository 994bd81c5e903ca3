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
fn a_cxx_extension_from_a_manylinux_wheel_runs_in_the_scratch_image_and_the_packages() {
    // cxxapp's dependency, murmurhash, is C++ and links the system's libstdc++.so.6 and
    // libgcc_s.so.1 (as the manylinux policy allows): the scratch image had neither, and
    // the frozen, deb and rpm targets were not told they must provide them.
    let mut tiers = vec!["frozen", "oci", "deb"];
    let engine = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if engine {
        tiers.push("docker");
    }
    if require("rpm") {
        tiers.push("rpm");
    }
    let tiers = tiers.join(",");
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", &tiers])
        .arg(fixture("cxx-app"))
        .arg("--out")
        .arg(out.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), tiers.split(',').count());
    for artifact in artifacts {
        assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
        // What the target must provide says so where the target's system gives it.
        let libraries = &artifact["target_needs"]["libraries"];
        if ["frozen", "deb", "rpm"].contains(&artifact["tier"].as_str().unwrap()) {
            assert_eq!(
                *libraries,
                serde_json::json!(["libgcc_s.so.1", "libstdc++.so.6"]),
                "{artifact}"
            );
        } else {
            assert!(libraries.is_null(), "{artifact}");
        }
    }
    // As dpkg-shlibdeps would have it.
    let deb = only_file(out.path(), ".deb");
    let info = stdout(&run(std::process::Command::new("dpkg-deb")
        .args(["--field"])
        .arg(&deb)
        .arg("Depends")));
    assert!(
        info.contains("libstdc++6") && info.contains("libgcc-s1"),
        "{info}"
    );
}
