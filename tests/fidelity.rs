//! Real apps run from every tier as from a venv: the behaviours that broke real
//! applications (issue 23), each on a fixture that does what those apps did.

use crate::util::*;

/// `tiers`, with `rpm` when this host can check an rpm, and with `docker` (when asked) when
/// an engine answers: CI has both, and there a missing one fails instead.
fn checkable(tiers: &[&str], docker: bool) -> String {
    let mut tiers = tiers.to_vec();
    if require("rpm") {
        tiers.push("rpm");
    }
    if docker && docker_engine() {
        tiers.push("docker");
    }
    tiers.join(",")
}

/// `build --rebuild --to TIERS PROJECT EXTRA...` into a fresh folder: the run must pass,
/// with one artifact per tier, each of whose smoke tests passed (so a smoke result cached
/// from another build cannot hide a failure). The folder and the manifest.
fn build_passing(
    project: &std::path::Path,
    tiers: &str,
    extra: &[&str],
) -> (tempfile::TempDir, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--rebuild", "--to", tiers])
        .arg(project)
        .arg("--out")
        .arg(out.path())
        .args(extra));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let artifacts = manifest["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), tiers.split(',').count(), "{manifest}");
    for artifact in artifacts {
        assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
    }
    (out, manifest)
}

#[test]
fn locale_device_files_and_tmp_work_in_the_image_and_the_package_roots() {
    // sysapp sets the locale from LANG=C.UTF-8, writes /dev/null, reads /dev/urandom and
    // writes in /tmp: the scratch image lacked the locale's files, and the roots the deb,
    // rpm and image are checked in had no /dev/null.
    let tiers = checkable(&["wheel", "zipapp", "frozen", "oci", "deb"], false);
    build_passing(&fixture("system-app"), &tiers, &[]);
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
    let tiers = checkable(&["frozen", "oci", "deb"], false);
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
        build_passing(project.path(), &tiers, &[]);
    };
    build(true);
    build(false);
}

/// Run `program` with `args` under the name `invoked` (a symlink in `dir`), so that a
/// multi-call file sees that name as its `argv[0]`.
fn run_as(
    dir: &std::path::Path,
    program: &std::path::Path,
    invoked: &str,
    args: &[&str],
) -> std::process::Output {
    let link = dir.join(invoked);
    if !link.exists() {
        std::os::unix::fs::symlink(program, &link).unwrap();
    }
    run(std::process::Command::new(&link)
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("GRADIENT_PYZ_CACHE", dir.join("pyz-cache")))
}

#[test]
fn several_scripts_and_none_named_like_the_project_build_in_every_tier() {
    // multitool has mt-count and mt-upper and no `entry`: every tier but the wheel refused
    // it. Now the single-file tiers are multi-call files, the image has no entrypoint and
    // every script on PATH, and the packages install both scripts.
    let tiers = checkable(&["sdist", "wheel", "zipapp", "frozen", "oci", "deb"], true);
    let docker = tiers.contains("docker");
    let tag = "gradient-test-multitool:1";
    let (out, manifest) = build_passing(&fixture("multi-tool"), &tiers, &["--tag", tag]);
    let artifacts = manifest["artifacts"].as_array().unwrap();
    for artifact in artifacts {
        let commands: Vec<String> = artifact["smoke"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_string())
            .collect();
        if artifact["tier"] != "sdist" {
            for script in ["mt-count", "mt-upper"] {
                assert!(commands.iter().any(|c| c.contains(script)), "{commands:?}");
            }
        }
    }

    // The single-file tiers: each script by its name, and a list under any other name.
    let links = tempfile::tempdir().unwrap();
    let pyz = only_file(out.path(), ".pyz");
    let frozen = artifacts
        .iter()
        .find(|a| a["tier"] == "frozen")
        .map(|a| out.path().join(a["file"].as_str().unwrap()))
        .unwrap();
    for (kind, program) in [("pyz", &pyz), ("frozen", &frozen)] {
        let dir = links.path().join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let counted = run_as(&dir, program, "mt-count", &["one", "three"]);
        assert!(counted.status.success(), "{kind}: {}", stderr(&counted));
        assert_eq!(stdout(&counted).trim(), "2 words, 8 letters", "{kind}");
        let upper = run_as(&dir, program, "mt-upper", &["quiet", "please"]);
        assert!(upper.status.success(), "{kind}: {}", stderr(&upper));
        assert_eq!(stdout(&upper).trim(), "QUIET PLEASE", "{kind}");
        let other = run_as(&dir, program, "something-else", &["x"]);
        assert_eq!(other.status.code(), Some(2), "{kind}: {}", stderr(&other));
        let listed = stderr(&other);
        assert!(
            listed.contains("mt-count") && listed.contains("mt-upper"),
            "{kind}: {listed}"
        );
    }

    // The image: no entrypoint hides the scripts, each runs by its name.
    if docker {
        for (args, expected) in [
            (&["mt-count", "a", "bb"][..], "2 words, 3 letters"),
            (&["mt-upper", "loud"][..], "LOUD"),
        ] {
            let ran = run(std::process::Command::new("docker")
                .args(["run", "--rm", "--network", "none", tag])
                .args(args));
            assert!(ran.status.success(), "{}", stderr(&ran));
            assert_eq!(stdout(&ran).trim(), expected);
        }
        let _ = run(std::process::Command::new("docker").args(["rmi", tag]));
    }
}

#[test]
fn a_run_whose_tiers_all_failed_says_so_instead_of_an_empty_table() {
    // A project with no console script cannot be a .pyz: the run used to print a table with
    // no row and `wrote OUT`, as if something had been built.
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=77\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"noscript\"\nversion = \"1.0\"\n\n[tool.setuptools]\npy-modules = [\"noscript\"]\n",
    )
    .unwrap();
    std::fs::write(project.path().join("noscript.py"), "VALUE = 1\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "zipapp"])
        .arg(project.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let table = stdout(&output);
    let row = table
        .lines()
        .find(|l| l.starts_with("zipapp"))
        .unwrap_or_else(|| panic!("no zipapp row in:\n{table}"));
    assert!(
        row.contains("FAILED") && row.contains("no console script"),
        "{row}"
    );
    assert!(
        table.contains("no artifact was built"),
        "the last line must say nothing was built:\n{table}"
    );
}

#[test]
fn legacy_scripts_are_installed_and_run_in_every_tier() {
    // legacy-scripts has no console script, only setuptools `scripts=` files: a Python one
    // (`#!python` in the wheel) and a shell one. Every tier but the wheel refused it ("has
    // no console script"); now each installs them as pip does and runs them by name.
    let tiers = checkable(&["sdist", "wheel", "zipapp", "frozen", "oci", "deb"], true);
    let docker = tiers.contains("docker");
    let tag = "gradient-test-legacy-scripts:1";
    let (out, manifest) = build_passing(&fixture("legacy-scripts"), &tiers, &["--tag", tag]);
    let artifacts = manifest["artifacts"].as_array().unwrap();

    // The single-file tiers run both scripts by name.
    let links = tempfile::tempdir().unwrap();
    let pyz = only_file(out.path(), ".pyz");
    let frozen = artifacts
        .iter()
        .find(|a| a["tier"] == "frozen")
        .map(|a| out.path().join(a["file"].as_str().unwrap()))
        .unwrap();
    for (kind, program) in [("pyz", &pyz), ("frozen", &frozen)] {
        let dir = links.path().join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let tool = run_as(&dir, program, "legacy-tool", &["abc"]);
        assert!(tool.status.success(), "{kind}: {}", stderr(&tool));
        assert_eq!(
            stdout(&tool).trim(),
            "legacy-tool: nop (as __main__)",
            "{kind}"
        );
        let sh = run_as(&dir, program, "legacy-sh", &["x", "y"]);
        assert!(sh.status.success(), "{kind}: {}", stderr(&sh));
        assert_eq!(
            stdout(&sh).trim(),
            "legacy-sh: 2 arguments, first x",
            "{kind}"
        );
    }

    // The deb: the Python script's #! line names the package's own interpreter, the shell
    // script is as it was, both executable.
    let deb = only_file(out.path(), ".deb");
    let root = tempfile::tempdir().unwrap();
    let unpacked = run(std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path()));
    assert!(unpacked.status.success(), "{}", stderr(&unpacked));
    use std::os::unix::fs::PermissionsExt;
    for script in ["legacy-tool", "legacy-sh"] {
        let path = root.path().join("usr/bin").join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
    }
    let tool = std::fs::read_to_string(root.path().join("usr/bin/legacy-tool")).unwrap();
    assert!(tool.starts_with("#!/usr/lib/legacy-scripts/"), "{tool}");
    let sh = std::fs::read_to_string(root.path().join("usr/bin/legacy-sh")).unwrap();
    assert!(sh.starts_with("#!/bin/sh\n"), "{sh}");

    if docker {
        let ran = run(std::process::Command::new("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            tag,
            "legacy-tool",
            "abc",
        ]));
        assert!(ran.status.success(), "{}", stderr(&ran));
        assert_eq!(stdout(&ran).trim(), "legacy-tool: nop (as __main__)");
        let _ = run(std::process::Command::new("docker").args(["rmi", tag]));
    }
}

#[test]
fn entry_on_the_command_line_chooses_the_default_of_a_multi_call_file() {
    // `--entry NAME` does what `[tool.gradient] entry` does: the .pyz run under its own
    // name runs that script instead of listing them.
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .args(["build", "--to", "zipapp", "--entry", "mt-upper"])
        .arg(fixture("multi-tool"))
        .arg("--out")
        .arg(out.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let pyz = only_file(out.path(), ".pyz");
    let dir = tempfile::tempdir().unwrap();
    let ran = run_as(dir.path(), &pyz, "multitool.pyz", &["shout"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert_eq!(stdout(&ran).trim(), "SHOUT");
}

#[test]
fn a_cxx_extension_from_a_manylinux_wheel_runs_in_the_scratch_image_and_the_packages() {
    // cxxapp's dependency, murmurhash, is C++ and links the system's libstdc++.so.6 and
    // libgcc_s.so.1 (as the manylinux policy allows): the scratch image had neither, and
    // the frozen, deb and rpm targets were not told they must provide them.
    let tiers = checkable(&["frozen", "oci", "deb"], true);
    let (out, manifest) = build_passing(&fixture("cxx-app"), &tiers, &[]);
    let artifacts = manifest["artifacts"].as_array().unwrap();
    for artifact in artifacts {
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

#[test]
fn console_scripts_see_a_venvs_sys_path_and_a_working_sys_executable() {
    // venvlike drops sys.path[0] and then imports standard modules, runs sys.executable
    // with -c and -m, computes in spawn and forkserver pools and makes a venv from
    // sys.executable: the bundled interpreter ran with -I, which put the standard-library
    // zip at sys.path[0], and the frozen app's sys.executable was not a usable Python.
    let tiers = checkable(&["wheel", "zipapp", "frozen", "oci", "deb"], false);
    build_passing(&fixture("venv-like-app"), &tiers, &[]);
}
