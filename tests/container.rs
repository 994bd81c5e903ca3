//! The container tiers: the image tarball (no engine needed) and the docker tier against a
//! real Docker engine. Engine tests skip when no engine answers, and fail instead when
//! GRADIENT_REQUIRE_DOCKER=1 (CI sets it).

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn docker(args: &[&str]) -> std::process::Output {
    run(Command::new("docker").args(args))
}

/// The image's layout unpacked: (manifest.json, index.json, the OCI manifest, the config).
struct Layout {
    dir: tempfile::TempDir,
    docker: Value,
    manifest: Value,
    config: Value,
}

impl Layout {
    fn read(tarball: &Path) -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let json = |p: PathBuf| -> Value { read_json(&p) };
        let blob = |digest: &str| {
            dir.path()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"))
        };
        // Every blob is named by its own digest.
        for entry in std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(
                sha256_file(&path),
                path.file_name().unwrap().to_string_lossy()
            );
        }
        let index = json(dir.path().join("index.json"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
        let config = json(blob(manifest["config"]["digest"].as_str().unwrap()));
        let docker = json(dir.path().join("manifest.json"));
        Layout {
            dir,
            docker,
            manifest,
            config,
        }
    }

    fn layer_digests(&self) -> Vec<String> {
        self.manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn the_image_is_reproducible_well_formed_and_an_app_change_rewrites_only_the_app_layer() {
    let out = tempfile::tempdir().unwrap();
    let first = build(
        &fixture("sampleapp"),
        &out.path().join("a"),
        &["--to", "oci"],
    );
    assert!(
        first.status.success(),
        "the oci build and its chroot smoke test pass"
    );
    let second = build(
        &fixture("sampleapp"),
        &out.path().join("b"),
        &["--to", "oci", "--no-smoke", "--rebuild"],
    );
    assert!(second.status.success());
    let a = only_file(&out.path().join("a"), ".oci.tar");
    let b = only_file(&out.path().join("b"), ".oci.tar");
    assert_eq!(
        sha256_file(&a),
        sha256_file(&b),
        "two builds, the same bytes"
    );

    let layout = Layout::read(&a);
    let layers = layout.layer_digests();
    assert_eq!(layers.len(), 4, "base, runtime, dependencies, app");
    // The docker-archive manifest names the same blobs and the default tags.
    assert_eq!(
        layout.docker[0]["RepoTags"],
        serde_json::json!(["sampleapp:1.2.3", "sampleapp:latest"])
    );
    let docker_layers: Vec<String> = layout.docker[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "sha256:{}",
                l.as_str().unwrap().trim_start_matches("blobs/sha256/")
            )
        })
        .collect();
    assert_eq!(docker_layers, layers);
    let config = &layout.config;
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/sampleapp"])
    );
    assert_eq!(config["config"]["User"], "1000:1000", "not root by default");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    assert_eq!(config["history"].as_array().unwrap().len(), 4);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "sampleapp"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "1.2.3"
    );
    assert!(config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("PATH=/usr/local/bin:")));
    // The base layer carries the loader every x86-64 executable names, and /tmp is sticky.
    let base = layout
        .dir
        .path()
        .join("blobs/sha256")
        .join(layers[0].trim_start_matches("sha256:"));
    let listing = run(Command::new("tar").arg("-tvzf").arg(&base));
    let listing = stdout(&listing);
    assert!(listing.contains("lib64 -> usr/lib64"), "{listing}");
    assert!(
        listing.contains("usr/lib64/ld-linux-x86-64.so.2"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxrwxrwt") && l.ends_with(" tmp/")),
        "{listing}"
    );

    // One line of app code changed: the app layer alone differs.
    let changed = sample_with("");
    let greeting = changed.path().join("src/sampleapp/data/greeting.txt");
    std::fs::write(&greeting, "Hi, {name}!\n").unwrap();
    let pyproject = changed.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject)
        .unwrap()
        .replace("Hello, X!", "Hi, X!");
    std::fs::write(&pyproject, text).unwrap();
    let third = build(changed.path(), &out.path().join("c"), &["--to", "oci"]);
    assert!(third.status.success());
    let other = Layout::read(&only_file(&out.path().join("c"), ".oci.tar"));
    let other_layers = other.layer_digests();
    assert_eq!(
        other_layers[..3],
        layers[..3],
        "base, runtime and dependencies are reused"
    );
    assert_ne!(other_layers[3], layers[3], "the app layer changed");
}

#[test]
fn a_new_commit_of_the_same_tree_is_a_new_image_with_its_revision() {
    // The image's config names the commit the project is at: a cached image of the same
    // tree at another commit must not be reused with the old revision.
    let project = tempfile::tempdir().unwrap();
    copy_tree(&fixture("sampleapp"), project.path());
    let git = |args: &[&str]| {
        let done = Command::new("git")
            .arg("-C")
            .arg(project.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .output()
            .unwrap();
        assert!(done.status.success(), "git {args:?}");
        String::from_utf8_lossy(&done.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "one"]);
    let revision_of = |out: &Path| {
        let layout = Layout::read(&only_file(out, ".oci.tar"));
        layout.config["config"]["Labels"]["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let out = tempfile::tempdir().unwrap();
    let first = build(
        project.path(),
        &out.path().join("a"),
        &["--to", "oci", "--no-smoke"],
    );
    assert!(first.status.success());
    assert_eq!(
        revision_of(&out.path().join("a")),
        git(&["rev-parse", "HEAD"])
    );
    git(&["commit", "-q", "--allow-empty", "-m", "two"]);
    let second = build(
        project.path(),
        &out.path().join("b"),
        &["--to", "oci", "--no-smoke"],
    );
    assert!(second.status.success());
    assert!(
        !stderr(&second).contains("oci: reused"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        revision_of(&out.path().join("b")),
        git(&["rev-parse", "HEAD"])
    );
}

#[test]
fn docker_tier_loads_the_sample_and_docker_run_works_and_a_fresh_engine_loads_the_tarball() {
    if !docker_engine() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let output = build(&fixture("sampleapp"), out.path(), &["--to", "docker"]);
    assert!(output.status.success());
    let manifest: Value = read_json(&out.path().join("gradient-manifest.json"));
    let record = &manifest["artifacts"][0];
    assert_eq!(record["tier"], "docker");
    assert!(record["delivered"]
        .as_str()
        .unwrap()
        .contains("sampleapp:1.2.3"));
    assert_eq!(record["smoke"]["passed"], true);

    let hello = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sampleapp:1.2.3",
        "greet",
        "X",
    ]);
    assert!(hello.status.success());
    assert_eq!(stdout(&hello).trim(), "Hello, X!");
    let whoami = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/usr/local/bin/python3",
        "sampleapp:1.2.3",
        "-c",
        "import os; print(os.getuid())",
    ]);
    assert_eq!(
        stdout(&whoami).trim(),
        "1000",
        "the image runs as a non-root user"
    );

    // A fresh engine has none of it: remove what the build loaded, then `docker load`, whose
    // tags come from the tarball's own manifest.json.
    let tarball = only_file(out.path(), ".oci.tar");
    let removed = docker(&["rmi", "sampleapp:1.2.3", "sampleapp:latest"]);
    assert!(removed.status.success());
    assert!(!docker(&["image", "inspect", "sampleapp:1.2.3"])
        .status
        .success());
    let load = docker(&["load", "-i", tarball.to_str().unwrap()]);
    assert!(load.status.success());
    assert!(stdout(&load).contains("sampleapp:1.2.3"));
    let again = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sampleapp:1.2.3",
        "greet",
        "Y",
    ]);
    assert_eq!(stdout(&again).trim(), "Hello, Y!");
}

#[test]
fn after_an_app_change_the_engine_is_sent_only_the_app_layer() {
    if !docker_engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = sample_with("");
    let tag = "gradient-test-thin:1";
    let args = ["--to", "docker", "--no-smoke", "--tag", tag];
    let first = build(project.path(), &dir.path().join("a"), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::write(
        project.path().join("src/sampleapp/data/greeting.txt"),
        "Hi, {name}!\n",
    )
    .unwrap();
    let second = build(project.path(), &dir.path().join("b"), &args);
    assert!(second.status.success(), "{}", stderr(&second));
    let manifest: Value = read_json(&dir.path().join("b/gradient-manifest.json"));
    let delivered = manifest["artifacts"][0]["delivered"].as_str().unwrap();
    assert!(
        delivered.contains("the engine had 3 of its layers"),
        "{delivered}"
    );
    // What the engine made of the shortened upload runs the changed app.
    let hello = docker(&["run", "--rm", "--network", "none", tag, "greet", "X"]);
    assert_eq!(stdout(&hello).trim(), "Hi, X!", "{}", stderr(&hello));
    let _ = docker(&["rmi", tag]);
}

#[test]
fn a_base_image_with_its_own_cpython_is_installed_against_from_disk_and_from_the_docker_engine() {
    // The sample's own image is a base with CPython 3.11 at /usr/local/bin/python3.11.
    let out = tempfile::tempdir().unwrap();
    let base_out = out.path().join("base");
    let built = build(
        &fixture("sampleapp"),
        &base_out,
        &["--to", "oci", "--no-smoke", "--tag", "gradient-test-base:1"],
    );
    assert!(built.status.success());
    let base_tar = only_file(&base_out, ".oci.tar");

    let project = sample_with(&format!(
        "\n[tool.gradient.container]\nbase = \"oci:{}\"\nports = [8080]\n",
        base_tar.display()
    ));
    let output = build(project.path(), &out.path().join("on-oci"), &["--to", "oci"]);
    assert!(
        output.status.success(),
        "built on the base and smoke-tested"
    );
    let layout = Layout::read(&only_file(&out.path().join("on-oci"), ".oci.tar"));
    let base_layout = Layout::read(&base_tar);
    let layers = layout.layer_digests();
    assert_eq!(
        layers.len(),
        6,
        "the base's four layers, then dependencies and app: no second runtime"
    );
    assert_eq!(layers[..4], base_layout.layer_digests()[..]);
    assert_eq!(
        layout.config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );

    if !docker_engine() {
        return;
    }
    let load = docker(&["load", "-i", base_tar.to_str().unwrap()]);
    assert!(load.status.success());
    let project =
        sample_with("\n[tool.gradient.container]\nbase = \"docker:gradient-test-base:1\"\n");
    let output = build(
        project.path(),
        &out.path().join("on-docker"),
        &["--to", "docker", "--tag", "gradient-test-on-base:1"],
    );
    assert!(output.status.success());
    let hello = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "gradient-test-on-base:1",
        "greet",
        "Z",
    ]);
    assert_eq!(stdout(&hello).trim(), "Hello, Z!");
    docker(&["rmi", "gradient-test-on-base:1", "gradient-test-base:1"]);
}

#[test]
fn without_an_engine_docker_fails_keeps_the_tarball_and_says_how_to_load_it() {
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["build", "--to", "docker"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out.path()));
    fails_with(
        &output,
        1,
        &[
            "no Docker engine answers at unix:///nonexistent/docker.sock",
            "docker load -i",
        ],
    );
    let tarball = only_file(out.path(), ".oci.tar");
    assert!(std::fs::metadata(&tarball).unwrap().len() > 1_000_000);
    assert!(std::fs::read_to_string(out.path().join("SHA256SUMS"))
        .unwrap()
        .contains(".oci.tar"));
    // `--all` skips the docker tier with its reason instead of failing.
    let all = run(gradient()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["build", "--all", "--no-smoke"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out.path().join("all")));
    assert!(all.status.success());
    assert!(stderr(&all).contains("skipping docker: no Docker engine"));
}

#[test]
fn a_cached_image_that_this_run_could_not_load_is_not_recorded_as_delivered() {
    if !docker_engine() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let build = |docker_host: Option<&str>| {
        let mut command = gradient();
        if let Some(host) = docker_host {
            command.env("DOCKER_HOST", host);
        }
        run(command
            .args(["build", "--to", "docker"])
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(out.path()))
    };
    assert!(build(None).status.success());
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    assert!(manifest["artifacts"][0]["delivered"]
        .as_str()
        .is_some_and(|d| d.contains("Docker")));
    // The engine is gone: the tier is reused from the cache, but nothing is loaded.
    let output = build(Some("unix:///nonexistent/docker.sock"));
    fails_with(&output, 1, &["no Docker engine answers"]);
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let row = &manifest["artifacts"][0];
    assert_eq!(row["reused"], true, "{row}");
    assert!(row["delivered"].is_null(), "{row}");
    assert!(row["smoke"].is_null(), "{row}");
}

#[test]
fn permission_denied_on_the_socket_says_how_to_get_access() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let is_root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    // Root may open any socket: drop to nobody for the probe.
    let mut command = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_gradient"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_gradient"))
    };
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = run(command
        .arg("doctor")
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("HOME", home.path())
        .env("GRADIENT_CACHE_DIR", home.path().join("cache")));
    let text = stdout(&output) + &stderr(&output);
    assert!(
        text.contains("permission denied on the Docker engine"),
        "{text}"
    );
}

#[test]
fn bad_container_settings_are_refused_with_file_line_and_what_to_do() {
    for (setting, says) in [
        (
            "ports = [70000]",
            "port 70000 is not a number from 1 to 65535",
        ),
        ("ports = [\"80/xyz\"]", "has the protocol `xyz`"),
        ("user = \"Bad User\"", "`Bad User` is not a valid user"),
        (
            "base = \"ubuntu\"",
            "`ubuntu` is not a base image gradient understands",
        ),
    ] {
        let project = sample_with(&format!("\n[tool.gradient.container]\n{setting}\n"));
        let output = build(
            project.path(),
            &project.path().join("dist"),
            &["--to", "oci"],
        );
        let line = std::fs::read_to_string(project.path().join("pyproject.toml"))
            .unwrap()
            .lines()
            .count();
        fails_with(
            &output,
            2,
            &[says, &format!("pyproject.toml:{line}:"), "hint:"],
        );
        assert!(!project.path().join("dist").exists(), "nothing written");
    }
    // A user name a scratch image does not have.
    let project = sample_with("\n[tool.gradient.container]\nuser = \"www\"\n");
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "oci"],
    );
    fails_with(
        &output,
        1,
        &["user `www` does not exist in a scratch image", "hint:"],
    );
    assert!(listing(&project.path().join("dist"))
        .iter()
        .all(|f| !f.ends_with(".oci.tar")));
    // `nobody` is one of the scratch image's users, and the image runs as it.
    let project = sample_with("\n[tool.gradient.container]\nuser = \"nobody\"\n");
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "oci"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_entrypoint_of_the_projects_own_is_checked_to_be_in_the_image() {
    // The smoke commands run console scripts by name, never through a custom entrypoint:
    // a separate check looks for the program it starts.
    let broken = sample_with(
        "\n[tool.gradient.container]\nentrypoint = [\"/usr/local/bin/does-not-exist\"]\n",
    );
    let output = build(broken.path(), &broken.path().join("dist"), &["--to", "oci"]);
    fails_with(
        &output,
        1,
        &[
            "smoke `the image's entrypoint is an executable of the image` failed",
            "`/usr/local/bin/does-not-exist` is not an executable file of the image",
        ],
    );
    // A bare name is found on the image's PATH. (And a working folder of the project's own
    // is in the app layer, owned by the image's user, not made by the engine as root.)
    let by_name = sample_with(
        "\n[tool.gradient.container]\nentrypoint = [\"sampleapp\"]\nworkdir = \"/data\"\n",
    );
    let output = build(
        by_name.path(),
        &by_name.path().join("dist"),
        &["--to", "oci"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // The entrypoint, the smoke command, the comparison with the reference venv.
    assert!(stdout(&output).contains("ok (3/3)"), "{}", stdout(&output));
    let layout = Layout::read(&only_file(&by_name.path().join("dist"), ".oci.tar"));
    let app_layer = layout.dir.path().join("blobs/sha256").join(
        layout
            .layer_digests()
            .last()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = stdout(&run(Command::new("tar").arg("-tvzf").arg(&app_layer)));
    let line = listing
        .lines()
        .find(|l| l.ends_with(" data/"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.starts_with("drwxr-xr-x 1000/1000 "), "{line}");
}

#[test]
fn an_invalid_tag_is_refused_before_building() {
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &["--to", "oci", "--tag", "Sample App:1"],
    );
    fails_with(
        &output,
        2,
        &["`Sample App:1` is not a valid image reference", "hint:"],
    );
    assert!(listing(out.path()).is_empty());
}

/// An OCI layout on disk with one empty layer and the given config fields.
fn fake_base(dir: &Path, os: &str, files: &[&str]) -> PathBuf {
    let layout = dir.join("fake-base");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut layer = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(file).unwrap();
        header.set_size(0);
        header.set_mode(0o755);
        header.set_cksum();
        layer.append(&header, &[][..]).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let put = |bytes: &[u8]| -> String {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        format!("sha256:{digest}")
    };
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": os,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {}
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    })).unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len()}]
    })).unwrap()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

#[test]
fn base_images_that_cannot_be_used_say_why() {
    let dir = tempfile::tempdir().unwrap();
    // Not there.
    let project = sample_with("\n[tool.gradient.container]\nbase = \"oci:no-such-base.tar\"\n");
    let output = build(project.path(), &dir.path().join("o1"), &["--to", "oci"]);
    fails_with(&output, 1, &["no-such-base.tar` does not exist", "hint:"]);
    // A CPython other than the build's.
    let other = fake_base(
        dir.path(),
        "linux",
        &["usr/local/bin/python3.99", "usr/local/lib/python3.99/os.py"],
    );
    let project = sample_with(&format!(
        "\n[tool.gradient.container]\nbase = \"oci:{}\"\n",
        other.display()
    ));
    let output = build(project.path(), &dir.path().join("o2"), &["--to", "oci"]);
    fails_with(
        &output,
        1,
        &[
            "has CPython 3.99 at /usr/local/bin/python3.99",
            "--python 3.99",
        ],
    );

    if !docker_engine() {
        return;
    }
    // Not in the engine.
    let project =
        sample_with("\n[tool.gradient.container]\nbase = \"docker:gradient-test-missing:0\"\n");
    let output = build(project.path(), &dir.path().join("o3"), &["--to", "docker"]);
    fails_with(
        &output,
        1,
        &[
            "`gradient-test-missing:0` is not in the local engine",
            "docker load -i",
        ],
    );
    // A Windows base: refused by gradient itself, before any engine sees it.
    let windows = fake_base(&dir.path().join("w"), "windows", &[]);
    let project = sample_with(&format!(
        "\n[tool.gradient.container]\nbase = \"oci:{}\"\n",
        windows.display()
    ));
    let output = build(
        project.path(),
        &dir.path().join("o4"),
        &[
            "--to",
            "docker",
            "--no-smoke",
            "--tag",
            "gradient-test-windows:1",
        ],
    );
    fails_with(
        &output,
        1,
        &["linux/amd64 image is on a base image for the operating system `windows`"],
    );
    assert!(
        !dir.path()
            .join("o4")
            .join("sampleapp-1.2.3.oci.tar")
            .exists(),
        "no image of a base that cannot run it"
    );
}

/// The short upload leaves out the layers an image the engine holds begins with. When the
/// engine no longer has one of them (the image was removed meanwhile), it refuses that
/// upload: the whole tarball must follow, and the image load. The image here is made by
/// hand from two layers no other image has, so the engine cannot hold them.
#[test]
fn an_engine_that_lacks_a_left_out_layer_is_sent_the_whole_tarball() {
    use sha2::{Digest, Sha256};
    if !docker_engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unique = format!(
        "{} {:?}",
        dir.path().display(),
        std::time::SystemTime::now()
    );
    let tar_of = |files: &[(&str, &[u8])]| {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    };
    let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    let layers = [
        tar_of(&[("bottom", unique.as_bytes())]),
        tar_of(&[("top", unique.as_bytes())]),
    ];
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha(&config));
    let tag = format!("gradient-test-fallback:{}", &sha(unique.as_bytes())[..12]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": ["0/layer.tar", "1/layer.tar"],
    }]))
    .unwrap();
    let tarball = dir.path().join("image.tar");
    std::fs::write(
        &tarball,
        tar_of(&[
            ("manifest.json", &manifest),
            (&config_name, &config),
            ("0/layer.tar", &layers[0]),
            ("1/layer.tar", &layers[1]),
        ]),
    )
    .unwrap();
    // An image the engine "held" with the bottom layer: the short upload leaves it out.
    let gone = gradient_oci::HeldImage {
        id: "sha256:removed-meanwhile".into(),
        layers: vec![diff_ids[0].clone()],
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (said, left_out) = runtime.block_on(async {
        let engine = gradient_oci::Engine::connect().await.unwrap();
        engine.load(&tarball, &[gone]).await.unwrap()
    });
    assert_eq!(
        left_out, 0,
        "the whole tarball was sent after the refusal: {said}"
    );
    assert!(said.contains(&tag), "{said}");
    let inspected = docker(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", &tag]);
    let held: Vec<String> =
        serde_json::from_slice(&inspected.stdout).expect("the image was loaded");
    docker(&["rmi", &tag]);
    assert_eq!(held, diff_ids);
}

#[test]
fn interrupting_a_docker_smoke_test_removes_its_container() {
    if !docker_engine() {
        return;
    }
    // Every command of this app sleeps first: the interrupt lands while a container runs.
    let project = sample_with("");
    let cli = project.path().join("src/sampleapp/cli.py");
    let text = std::fs::read_to_string(&cli).unwrap();
    std::fs::write(&cli, format!("{text}\nimport time\ntime.sleep(120)\n")).unwrap();
    let tag = "gradient-test-interrupt:1";
    let containers = || {
        let listed = Command::new("docker")
            .args(["ps", "-a", "-q", "--filter", &format!("ancestor={tag}")])
            .output()
            .unwrap();
        stdout(&listed)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let out = tempfile::tempdir().unwrap();
    let child = gradient()
        .args(["build", "--to", "docker", "--tag", tag])
        .arg(project.path())
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let running = loop {
        let found = containers();
        if !found.is_empty() {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no smoke container started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Labelled with the run that owns it, so that a later run can find it (checked below,
    // once the engine is as it was).
    let labels = docker(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &running[0],
    ]);
    let labels: Value = serde_json::from_str(&stdout(&labels)).unwrap_or_default();
    let pid = child.id().to_string();

    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&output));
    let left = containers();
    // Whatever happened, leave the engine as it was.
    for id in &left {
        docker(&["rm", "-f", id]);
    }
    let _ = docker(&["rmi", tag]);
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(left, Vec::<String>::new(), "the smoke container was left");
    let owner = labels["org.gradient.smoke.owner"]
        .as_str()
        .unwrap_or_default();
    assert!(owner.split('/').any(|part| part == pid), "{labels}");
}

/// Whether this host can build and run linux/arm64 (apt-get for Debian's arm64 CPython,
/// qemu-user registered in binfmt_misc): a skip elsewhere, a failure under
/// GRADIENT_REQUIRE_CROSS=1.
fn can_build_arm64() -> bool {
    let qemu = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|t| t.starts_with("enabled"));
    let apt = require("apt-get");
    if qemu && apt {
        return true;
    }
    let why = "linux/arm64 needs apt-get and qemu-user's aarch64 handler in binfmt_misc";
    assert!(
        !std::env::var("GRADIENT_REQUIRE_CROSS").is_ok_and(|v| v == "1"),
        "{why} (GRADIENT_REQUIRE_CROSS=1)"
    );
    eprintln!("skipped: {why}");
    false
}

/// Every ELF file's machine in a layer blob (gzip or plain tar): (path, e_machine).
fn layer_machines(blob: &Path) -> Vec<(String, u16)> {
    use std::io::Read;
    let bytes = std::fs::read(blob).unwrap();
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes.as_slice()))
    } else {
        Box::new(bytes.as_slice())
    };
    let mut archive = tar::Archive::new(reader);
    let mut found = Vec::new();
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

#[test]
fn the_sample_for_amd64_and_arm64_is_one_image_index_and_docker_runs_the_arm64_image() {
    if !can_build_arm64() || !docker_engine() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &[
            "--to",
            "oci,docker",
            "--platform",
            "linux/amd64,linux/arm64",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let tarball = only_file(out.path(), ".oci.tar");
    assert_eq!(tarball.file_name().unwrap(), "sampleapp-1.2.3.oci.tar");
    let manifest: Value = read_json(&out.path().join("gradient-manifest.json"));
    for record in manifest["artifacts"].as_array().unwrap() {
        if record["tier"] == "oci" || record["tier"] == "docker" {
            assert_eq!(record["smoke"]["passed"], true, "{record}");
        }
    }

    // index.json → an image index of both platforms' manifests.
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let blob = |digest: &str| {
        dir.path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let top = read_json(&dir.path().join("index.json"));
    let index = read_json(&blob(top["manifests"][0]["digest"].as_str().unwrap()));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let archs: Vec<&str> = platforms.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    for (arch, digest) in &platforms {
        let image = read_json(&blob(digest));
        let config = read_json(&blob(image["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["architecture"], arch.as_str());
        let machine = if arch == "arm64" { 183 } else { 62 };
        let mut elves = 0;
        for layer in image["layers"].as_array().unwrap() {
            for (path, found) in layer_machines(&blob(layer["digest"].as_str().unwrap())) {
                assert_eq!(found, machine, "{path} in the {arch} image");
                elves += 1;
            }
        }
        assert!(
            elves > 50,
            "the {arch} image carries its runtime's ELF files"
        );
    }

    // The engine has each under its tag; `docker run --platform linux/arm64` runs arm64.
    let arm = "sampleapp:1.2.3-linux-arm64";
    let hello = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        "linux/arm64",
        arm,
        "greet",
        "X",
    ]);
    assert!(hello.status.success(), "{}", stderr(&hello));
    assert_eq!(stdout(&hello).trim(), "Hello, X!");
    let machine = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "/usr/local/bin/python3.11",
        arm,
        "-c",
        "import platform; print(platform.machine())",
    ]);
    assert_eq!(stdout(&machine).trim(), "aarch64", "{}", stderr(&machine));
    let host = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sampleapp:1.2.3",
        "greet",
        "Y",
    ]);
    assert_eq!(stdout(&host).trim(), "Hello, Y!");
}
