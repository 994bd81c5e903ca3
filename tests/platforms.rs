//! Building for linux/arm64 on an x86_64 host: each tier's files for both platforms from one
//! run, each arm64 file smoke-tested under qemu-user, both reproducible.

use crate::util::*;

const AARCH64: u16 = 183;
const X86_64: u16 = 62;

#[test]
fn the_sample_builds_for_arm64_beside_amd64_each_runs_under_emulation_and_reproduces() {
    if !can_build_arm64() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &[
            "--to",
            "sdist,wheel,zipapp,frozen",
            "--platform",
            "linux/amd64,linux/arm64",
            "--verify-reproducible",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let records: Vec<(&str, &str, Option<&str>)> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["tier"].as_str().unwrap(),
                a["file"].as_str().unwrap(),
                a["platform"].as_str(),
            )
        })
        .collect();
    // msgpack has compiled code: one zipapp per platform. The sdist and the pure wheel
    // serve both.
    for expected in [
        ("sdist", "sampleapp-1.2.3.tar.gz", None),
        ("wheel", "sampleapp-1.2.3-py3-none-any.whl", None),
        ("zipapp", "sampleapp-1.2.3.pyz", Some("linux/amd64")),
        (
            "zipapp",
            "sampleapp-1.2.3-linux-aarch64.pyz",
            Some("linux/arm64"),
        ),
        (
            "frozen",
            "sampleapp-1.2.3-linux-x86_64",
            Some("linux/amd64"),
        ),
        (
            "frozen",
            "sampleapp-1.2.3-linux-aarch64",
            Some("linux/arm64"),
        ),
    ] {
        assert!(records.contains(&expected), "{expected:?} in {records:?}");
    }
    assert_eq!(records.len(), 6, "{records:?}");
    for record in manifest["artifacts"].as_array().unwrap() {
        let file = record["file"].as_str().unwrap();
        // Every file ran (the arm64 ones under qemu) and did as in the plain venv.
        let smoke = &record["smoke"];
        assert_eq!(smoke["passed"], true, "{file}: {smoke}");
        assert!(
            !smoke["checks"].as_array().unwrap().is_empty(),
            "{file} was run"
        );
        assert_eq!(record["reproducible"], true, "{file}");
        if record["platform"] == "linux/arm64" {
            let reference = &smoke["reference"];
            assert!(
                reference["matched"].as_u64().unwrap_or(0) > 0
                    && reference["matched"] == reference["total"],
                "{file} behaves as in the venv: {reference}"
            );
        }
    }
    // Its bill of materials and its row of the report say the platform too.
    let sbom = read_json(&out.path().join("sampleapp-1.2.3-linux-aarch64.cdx.json"));
    let properties = sbom["metadata"]["component"]["properties"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        properties
            .contains(&serde_json::json!({"name": "gradient:platform", "value": "linux/arm64"})),
        "{properties:?}"
    );
    // It carries Debian's arm64 CPython, not the build interpreter: its SBOM says which.
    let cpython = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cpython")
        .expect("the CPython it carries");
    let host_version = manifest["python"]["version"].as_str().unwrap();
    let version = cpython["version"].as_str().unwrap();
    assert!(version.starts_with("3.11."), "{cpython}");
    if host_version != "3.11.2" {
        assert_ne!(version, host_version, "{cpython}");
    }
    let report = read_json(&out.path().join("report.json"));
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["artifact"]["file"] == "sampleapp-1.2.3-linux-aarch64")
        .expect("the arm64 executable's row");
    assert_eq!(row["artifact"]["platform"], "linux/arm64");

    // The executables are each for their machine.
    assert_eq!(
        elf_machine(&out.path().join("sampleapp-1.2.3-linux-aarch64")),
        Some(AARCH64)
    );
    assert_eq!(
        elf_machine(&out.path().join("sampleapp-1.2.3-linux-x86_64")),
        Some(X86_64)
    );
    // The arm64 archive carries msgpack's aarch64 extension, and says it is for aarch64.
    let pyz = std::fs::File::open(out.path().join("sampleapp-1.2.3-linux-aarch64.pyz")).unwrap();
    let mut archive = zip::ZipArchive::new(pyz).unwrap();
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let extension = names
        .iter()
        .find(|n| n.contains("msgpack") && n.ends_with(".so"))
        .unwrap_or_else(|| panic!("msgpack's extension in {names:?}"))
        .clone();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name(&extension).unwrap(), &mut bytes).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), AARCH64);

    // A second build takes the arm64 resolution it kept, as the host's takes its published
    // lock: nothing is resolved again while the host's pins hold.
    let again = build(
        &fixture("sampleapp"),
        out.path(),
        &["--to", "zipapp", "--platform", "linux/arm64", "--no-smoke"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("linux/arm64 wheelhouse: 2 packages (lock reused"),
        "{}",
        stderr(&again)
    );

    // Run as an arm64 machine with only a C library would: the executable says aarch64.
    let libc = glibc_only_arm64_root();
    let probe = std::process::Command::new(out.path().join("sampleapp-1.2.3-linux-aarch64"))
        .args(["greet", "arm"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", out.path())
        .env("QEMU_LD_PREFIX", &libc)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(String::from_utf8_lossy(&probe.stdout).contains("arm"));
}

/// The libc-only root gradient made beside its Debian arm64 root in the tests' cache.
fn glibc_only_arm64_root() -> std::path::PathBuf {
    let cache =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gradient-cache/debian-python");
    std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("arm64-python3.11.libc-"))
        })
        .expect("the arm64 libc root in the cache")
}

#[test]
fn a_pure_zipapp_is_one_archive_for_both_platforms_and_a_compiled_app_is_refused() {
    if !can_build_arm64() {
        return;
    }
    // No compiled code anywhere: the two platforms' archives are the same bytes, published
    // once, bound to neither.
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("hatch-app"),
        out.path(),
        &["--to", "zipapp", "--platform", "linux/amd64,linux/arm64"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let zipapps: Vec<&serde_json::Value> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tier"] == "zipapp")
        .collect();
    assert_eq!(zipapps.len(), 1, "{zipapps:?}");
    assert_eq!(zipapps[0]["file"], "hatch-app-0.1.0.pyz");
    assert!(zipapps[0].get("platform").is_none(), "{:?}", zipapps[0]);

    // An app with compiled code of its own is not cross-compiled: refused by name, with
    // nothing written, even for the wheel alone.
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("cext-app"),
        out.path(),
        &["--to", "wheel", "--platform", "linux/arm64"],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("holds compiled code for this machine: gradient does not cross-compile it for linux/arm64"),
        "{text}"
    );
    assert!(listing(out.path()).is_empty(), "{:?}", listing(out.path()));
}

#[test]
fn a_package_with_no_compiled_code_is_one_file_for_both_platforms() {
    if !can_build_arm64() || !require("dpkg-deb") {
        return;
    }
    // The distribution's python3 runs it and nothing in it is compiled: `_all.deb`, built
    // and smoke-tested for each platform (the arm64 one on the arm64 runtime as python3,
    // under qemu), listed once, bound to neither.
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("hatch-app"), project.path());
    let pyproject = project.path().join("pyproject.toml");
    let mut text = std::fs::read_to_string(&pyproject).unwrap();
    text.push_str(
        "\n[tool.gradient.deb]\nlayout = \"system\"\nmaintainer = \"A <a@example.invalid>\"\n",
    );
    std::fs::write(&pyproject, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = build(
        project.path(),
        out.path(),
        &["--to", "deb", "--platform", "linux/amd64,linux/arm64"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("smoke `dpkg-deb --info hatch-app_0.1.0-1_all.deb` ok"),
        "{}",
        stderr(&output)
    );
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let debs: Vec<&serde_json::Value> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tier"] == "deb")
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    assert_eq!(debs[0]["file"], "hatch-app_0.1.0-1_all.deb");
    assert!(debs[0].get("platform").is_none(), "{:?}", debs[0]);
    assert_eq!(debs[0]["smoke"]["passed"], true);
}
