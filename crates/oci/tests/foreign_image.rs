//! The oci and docker tiers for linux/amd64 and linux/arm64 at once, made for real: the
//! host's runtime bundle and Debian's arm64 CPython bundled, one small app wheel, one
//! tarball with an image index. The arm64 image is checked to be arm64 through and
//! through (its config, every ELF file of its layers), smoke-tested in a chroot under
//! qemu-user, and, with a Docker engine, loaded under its platform tag and run with
//! `docker run --platform linux/arm64`. Skipped (with a message) without apt-get or
//! qemu's aarch64 handler; failed instead under `GRADIENT_REQUIRE_CROSS=1`. The engine part
//! is skipped without an engine unless `GRADIENT_REQUIRE_DOCKER=1`.
//!
//! `GRADIENT_TEST_DEBIAN_CACHE` may name a cache folder that keeps the Debian root between
//! runs.

use gradient_core::{
    Artifact, Backend, BuildContext, Inputs, Platform, Project, RuntimeFiles, SmokeContext,
    SourceDate, SourceDateOrigin, TargetSystem, WheelhouseFiles,
};
use gradient_oci::{platform_tag, tarball_images, DockerTier, OciTier};
use gradient_python::runtime::{build_foreign_runtime, build_runtime, StdlibChoice};
use gradient_python::target_python::debian_python_root;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[path = "../../python/tests/support/cross.rs"]
mod cross;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// A small app's wheel, written by the host's Python (zipfile), with one console script
/// that prints the machine it runs on.
fn write_app(dir: &Path) -> (Project, PathBuf) {
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"machineapp\"\nversion = \"1.0\"\n",
    )
    .unwrap();
    let wheel = dir.join("machineapp-1.0-py3-none-any.whl");
    let script = r#"
import sys, zipfile, hashlib, base64
files = {
    "machineapp/__init__.py": "import platform\ndef main():\n    print('machineapp on ' + platform.machine())\n",
    "machineapp-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: machineapp\nVersion: 1.0\n",
    "machineapp-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "machineapp-1.0.dist-info/entry_points.txt": "[console_scripts]\nmachineapp = machineapp:main\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("machineapp-1.0.dist-info/RECORD,,")
    z.writestr("machineapp-1.0.dist-info/RECORD", "\n".join(record) + "\n")
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .status()
        .unwrap();
    assert!(status.success());
    (Project::load(dir).unwrap(), wheel)
}

fn files(runtime: gradient_python::runtime::Runtime) -> RuntimeFiles {
    RuntimeFiles {
        id: runtime.identity(),
        dir: runtime.dir,
        python: runtime.python,
        site_packages: runtime.site_packages,
        glibc: runtime.glibc,
    }
}

/// The ELF machine of every ELF file in a layer blob (gzip or plain tar).
fn layer_machines(blob: &[u8]) -> Vec<(String, u16)> {
    let reader: Box<dyn Read> = if blob.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(blob))
    } else {
        Box::new(blob)
    };
    let mut found = Vec::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut head = [0u8; 20];
        if entry.read_exact(&mut head).is_ok() && head.starts_with(b"\x7fELF") {
            found.push((path, u16::from_le_bytes([head[18], head[19]])));
        }
    }
    found
}

/// Every file of the tarball by path.
fn tarball_files(tarball: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amd64_and_arm64_image_share_one_tarball_and_each_runs_as_its_platform() {
    if !cross::can_run_debian_arm64() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let debian_cache = std::env::var_os("GRADIENT_TEST_DEBIAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().join("debian"));
    let debian = debian_python_root("arm64", "3.11", &debian_cache, &|_| {}).unwrap();
    let cache = scratch.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let stdlib = StdlibChoice::of(&gradient_core::RuntimeConfig::default());
    let python = gradient_python::find_interpreter(
        &gradient_python::PythonRequest::Version(3, 11, None),
        &cache,
    )
    .await
    .unwrap();
    let host_runtime = files(
        build_runtime(&python, &stdlib, false, &cache)
            .await
            .unwrap(),
    );
    let arm_runtime = files(
        build_foreign_runtime(&debian, &stdlib, false, &cache)
            .await
            .unwrap(),
    );

    let project_dir = scratch.path().join("project");
    std::fs::create_dir_all(&project_dir).unwrap();
    let (project, wheel) = write_app(&project_dir);
    let app = gradient_wheel::read_app_wheel(&project, &wheel).unwrap();
    let site = scratch.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let lock = scratch.path().join("requirements.txt");
    std::fs::write(&lock, "").unwrap();
    let wheelhouse = WheelhouseFiles {
        site,
        lock,
        packages: Vec::new(),
    };
    let host = Arc::new(Inputs {
        app: Some(app.clone()),
        wheelhouse: Some(wheelhouse.clone()),
        runtime: Some(host_runtime),
        ..Inputs::default()
    });
    let arm = Arc::new(Inputs {
        app: Some(app),
        wheelhouse: Some(wheelhouse),
        runtime: Some(arm_runtime),
        target: Some(TargetSystem {
            platform: Platform::LinuxArm64,
            root: debian.root.clone(),
            loader_prefix: debian.loader_prefix().unwrap(),
            glibc: debian.glibc_version().unwrap(),
            python_version: debian.python_version("3.11"),
        }),
        ..Inputs::default()
    });
    let work_dir = scratch.path().join("work");
    std::fs::create_dir_all(&work_dir).unwrap();
    let (project, python) = (Arc::new(project), Arc::new(python));
    let cx = BuildContext {
        project: project.clone(),
        python: python.clone(),
        inputs: host.clone(),
        work_dir,
        source_date: SourceDate {
            seconds: 1_700_000_000,
            origin: SourceDateOrigin::Fixed,
        },
        cache_dir: cache.clone(),
        image_tags: Vec::new(),
        targets: vec![host.clone(), arm],
    };
    let started = std::time::Instant::now();
    let artifacts = OciTier.build(&cx).await.unwrap();
    eprintln!(
        "built both images in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let [artifact]: [Artifact; 1] = artifacts.try_into().unwrap();
    assert_eq!(
        artifact.platform, None,
        "the tarball holds several platforms"
    );
    assert_eq!(artifact.file_name(), "machineapp-1.0.oci.tar");

    // One image per platform, the host's the one docker load takes.
    let images = tarball_images(&artifact.path).unwrap();
    let platforms: Vec<Platform> = images.iter().map(|i| i.platform).collect();
    assert_eq!(platforms, [Platform::LinuxAmd64, Platform::LinuxArm64]);
    let files = tarball_files(&artifact.path);
    let json = |path: &str| -> serde_json::Value { serde_json::from_slice(&files[path]).unwrap() };
    for image in &images {
        let config = json(&image.config);
        assert_eq!(config["architecture"], image.platform.oci_arch());
        assert_eq!(config["os"], "linux");
    }
    let docker = json("manifest.json");
    assert_eq!(docker[0]["Config"], images[0].config.as_str());
    // The app layer (a pure wheel, compiled by the same CPython X.Y) is one blob for both
    // when both runtimes keep their packages in the same folder (Debian's arm64 CPython
    // says dist-packages where the host's may say site-packages).
    let same_site = host.runtime.as_ref().unwrap().site_packages
        == cx.targets[1].runtime.as_ref().unwrap().site_packages;
    assert_eq!(
        images[0].layers.last() == images[1].layers.last(),
        same_site
    );
    assert_ne!(
        images[0].layers[0], images[1].layers[0],
        "each its own C library"
    );

    // Every ELF file of each image is for its machine: no host file in the arm64 image.
    for (image, machine) in images.iter().zip([EM_X86_64, EM_AARCH64]) {
        let mut elves = 0;
        for layer in &image.layers {
            for (path, found) in layer_machines(&files[layer]) {
                assert_eq!(
                    found,
                    machine,
                    "{path} in the {} image",
                    image.platform.oci()
                );
                elves += 1;
            }
        }
        assert!(
            elves > 50,
            "{} has the runtime's ELF files",
            image.platform.oci()
        );
        let layer_names: Vec<String> = image
            .layers
            .iter()
            .flat_map(|l| layer_machines(&files[l]))
            .map(|(p, _)| p)
            .collect();
        let loader = match image.platform {
            Platform::LinuxArm64 => "usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            _ => "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        };
        assert!(layer_names.iter().any(|p| p == loader), "{loader}");
    }

    // The chroot smoke test runs both images, the arm64 one under qemu-user.
    let smoke_scratch = scratch.path().join("smoke");
    std::fs::create_dir_all(&smoke_scratch).unwrap();
    let smoke = SmokeContext {
        project: project.clone(),
        python: python.clone(),
        inputs: host.clone(),
        scratch: smoke_scratch,
        find_links: None,
        image_tags: Vec::new(),
        reference: None,
    };
    let report = OciTier.smoke(&artifact, &smoke).await.unwrap();
    for check in &report.checks {
        eprintln!("{} -> {} {}", check.command, check.passed, check.detail);
    }
    assert!(report.passed(), "{:#?}", report.checks);
    assert!(report
        .checks
        .iter()
        .any(|c| c.command.contains("linux/arm64") && c.detail.contains("aarch64")));

    // The engine: the host's image under its tags, the arm64 one under its own, and
    // `docker run --platform linux/arm64` runs it.
    let engine = gradient_oci::Engine::connect().await;
    if engine.is_err() {
        let required = std::env::var_os("GRADIENT_REQUIRE_DOCKER").is_some_and(|v| v == "1");
        assert!(!required, "no Docker engine (GRADIENT_REQUIRE_DOCKER=1)");
        eprintln!("skipped the engine part: no Docker engine");
        return;
    }
    let docker_artifact = Artifact {
        tier: gradient_core::Tier::Docker,
        ..artifact.clone()
    };
    let said = DockerTier
        .deliver(&docker_artifact, &cx)
        .await
        .unwrap()
        .unwrap();
    eprintln!("{said}");
    let arm_tag = platform_tag("machineapp:1.0", Platform::LinuxArm64);
    assert_eq!(arm_tag, "machineapp:1.0-linux-arm64");
    assert!(said.contains(&arm_tag), "{said}");
    let run = |platform: &str, tag: &str, args: &[&str]| {
        let output = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "--platform", platform])
            .args(args.iter().take(2))
            .arg(tag)
            .args(args.iter().skip(2))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "docker run --platform {platform} {tag}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let app_says = run("linux/arm64", &arm_tag, &["--entrypoint", "machineapp"]);
    assert_eq!(app_says.trim(), "machineapp on aarch64");
    let uname = run(
        "linux/arm64",
        &arm_tag,
        &[
            "--entrypoint",
            "/usr/local/bin/python3.11",
            "-c",
            "import os; print(os.uname().machine)",
        ],
    );
    assert_eq!(uname.trim(), "aarch64");
    let host_says = run(
        "linux/amd64",
        "machineapp:1.0",
        &["--entrypoint", "machineapp"],
    );
    assert_eq!(host_says.trim(), "machineapp on x86_64");

    let smoke_scratch = scratch.path().join("docker-smoke");
    std::fs::create_dir_all(&smoke_scratch).unwrap();
    let report = DockerTier
        .smoke(
            &docker_artifact,
            &SmokeContext {
                scratch: smoke_scratch,
                ..smoke
            },
        )
        .await
        .unwrap();
    for check in &report.checks {
        eprintln!("{} -> {} {}", check.command, check.passed, check.detail);
    }
    assert!(report.passed(), "{:#?}", report.checks);
    assert!(report
        .checks
        .iter()
        .any(|c| c.command.contains("--platform linux/arm64") && c.detail.contains("aarch64")));
    // The engine is shared: the test's images go.
    let _ = Command::new("docker")
        .args(["rmi", "machineapp:1.0", "machineapp:latest", &arm_tag])
        .arg("machineapp:latest-linux-arm64")
        .output();
}
