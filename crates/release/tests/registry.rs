//! Pushing to a real registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1,
//! each test with its own registry in a temporary folder, behind htpasswd basic auth. The
//! images are made here, by hand, as gradient's tarball lays them out; one holds a static
//! busybox, so `docker pull` and `docker run` of what was pushed can be checked.
//!
//! Missing `docker-registry` or `htpasswd` skips a test, or fails it when
//! `GRADIENT_REQUIRE_CHECKERS=1` or `CI` is set; missing docker (or busybox-static) skips
//! the docker step, or fails it when `GRADIENT_REQUIRE_DOCKER=1`.
//!
//! The credentials come from the process environment, which the tests change: they take
//! turns on [`ENV`].

use base64::Engine;
use gradient_release::keys::SigningKeys;
use gradient_release::registry::{
    self, Attachments, Attestation, Destination, ImageReference, RegistryError, RegistryOptions,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/registry_server.rs"]
mod registry_server;
use registry_server::*;

static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The process environment as a test wants it: credentials in the variables or not, a
/// Docker configuration folder of its own (never the user's), `extra_path` before `PATH`.
fn set_env(credentials: Option<(&str, &str)>, docker_config: &Path, extra_path: Option<&Path>) {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| std::env::var("PATH").unwrap_or_default());
    match credentials {
        Some((user, password)) => {
            std::env::set_var("GRADIENT_REGISTRY_USERNAME", user);
            std::env::set_var("GRADIENT_REGISTRY_PASSWORD", password);
        }
        None => {
            std::env::remove_var("GRADIENT_REGISTRY_USERNAME");
            std::env::remove_var("GRADIENT_REGISTRY_PASSWORD");
        }
    }
    std::env::set_var("DOCKER_CONFIG", docker_config);
    match extra_path {
        Some(extra) => std::env::set_var("PATH", format!("{}:{path}", extra.display())),
        None => std::env::set_var("PATH", path),
    }
}

/// A file for a layer: path, content, mode.
type File = (&'static str, Vec<u8>, u32);

fn tar_of(files: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A layer (gzip) and its diff_id.
fn layer(files: &[File]) -> (Vec<u8>, String) {
    let tar = tar_of(
        &files
            .iter()
            .map(|(p, d, m)| (p.to_string(), d.clone(), *m))
            .collect::<Vec<_>>(),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), sha(&tar))
}

/// Bytes that do not compress, so a small layer still takes several chunks.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut block = Sha256::digest(seed.as_bytes()).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// An image manifest over `layers` for `arch`, with its config; (manifest, config).
fn manifest(layers: &[(Vec<u8>, String)], arch: &str, entrypoint: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.1).collect::<Vec<_>>()},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": layers.iter().map(|(blob, _)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha(blob),
            "size": blob.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    (manifest, config)
}

/// Write the OCI layout tarball: `index.json` pointing at `top`, and every blob.
fn write_layout(path: &Path, top: (&[u8], &str), blobs: &[&[u8]]) {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": top.1, "digest": sha(top.0), "size": top.0.len(),
            "annotations": {"org.opencontainers.image.ref.name": "app:1.0"},
        }],
    }))
    .unwrap();
    let mut files = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            0o644,
        ),
        ("index.json".to_string(), index, 0o644),
    ];
    for blob in blobs.iter().chain([&top.0]) {
        let name = format!("blobs/sha256/{}", &sha(blob)[7..]);
        if !files.iter().any(|f| f.0 == name) {
            files.push((name, blob.to_vec(), 0o644));
        }
    }
    std::fs::write(path, tar_of(&files)).unwrap();
}

/// A small image whose layer holds `marker`'s noise; (tarball, manifest digest, layer).
fn small_image(dir: &Path, marker: &str) -> (PathBuf, String, Vec<u8>) {
    let (blob, diff_id) = layer(&[("data/marker", noise(marker, 5000), 0o644)]);
    let layers = [(blob.clone(), diff_id)];
    let (manifest, config) = manifest(&layers, "amd64", &["/bin/true"]);
    let path = dir.join(format!("{marker}.tar"));
    write_layout(
        &path,
        (&manifest, "application/vnd.oci.image.manifest.v1+json"),
        &[&config, &blob],
    );
    (path, sha(&manifest), blob)
}

fn options(chunk: u64) -> RegistryOptions {
    RegistryOptions {
        chunk_size: Some(chunk),
        ..RegistryOptions::default()
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

/// Whether docker (and a static busybox to run in it) are here; panics when required.
fn docker_ready() -> bool {
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let busybox = std::fs::read("/bin/busybox").is_ok_and(|b| is_static_elf(&b));
    let required = std::env::var("GRADIENT_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if !(engine && busybox) {
        assert!(
            !required,
            "GRADIENT_REQUIRE_DOCKER=1 but {}",
            if engine {
                "/bin/busybox is missing or not static (Debian package busybox-static)"
            } else {
                "no Docker engine answers (`docker version` fails)"
            }
        );
        eprintln!("skipping the docker step: no Docker engine, or no static /bin/busybox");
    }
    engine && busybox
}

/// Whether `elf` is a 64-bit little-endian ELF executable without an interpreter
/// (no `PT_INTERP` program header): it runs in an image that holds nothing else.
fn is_static_elf(elf: &[u8]) -> bool {
    let number = |at: usize, len: usize| -> usize {
        elf.get(at..at + len)
            .map_or(0, |b| b.iter().rev().fold(0, |n, &x| (n << 8) | x as usize))
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (offset, size, count) = (number(0x20, 8), number(0x36, 2), number(0x38, 2));
    count > 0 && (0..count).all(|i| number(offset + i * size, 4) != 3)
}

fn docker(config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Push a runnable image, fetch it back, push again (nothing sent), then pull and run it
/// with docker.
#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_and_run() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let registry = Registry::start();
    let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|_| b"not here".to_vec());
    let marker = format!("hello-from-gradient-{}", registry.port);
    let (blob, diff_id) = layer(&[("bin/busybox", busybox, 0o755)]);
    let layers = [(blob.clone(), diff_id)];
    let (manifest_bytes, config) = manifest(&layers, "amd64", &["/bin/busybox", "echo", &marker]);
    let tarball = scratch.path().join("image.tar");
    write_layout(
        &tarball,
        (
            &manifest_bytes,
            "application/vnd.oci.image.manifest.v1+json",
        ),
        &[&config, &blob],
    );
    let destination = Destination::parse(&format!("{}/team/app", registry.host())).unwrap();
    let wanted = tags(&["1.0", "latest"]);

    // The plan: offline, every item, nothing asked of the registry.
    let plan = registry::plan(&tarball, &destination, &wanted).unwrap();
    assert_eq!(plan.digest, sha(&manifest_bytes));
    assert_eq!(plan.items.len(), 2 + 1 + 2, "{:#?}", plan.items);

    let pushed = registry::push(&tarball, &destination, &wanted, &options(256 << 10))
        .await
        .unwrap();
    assert_eq!(pushed.digest, sha(&manifest_bytes));
    assert_eq!(
        pushed.reference,
        format!("{}/team/app@{}", registry.host(), pushed.digest)
    );
    assert!(pushed.items.iter().all(|i| i.sent), "{:#?}", pushed.items);
    assert_eq!(pushed.items.len(), 5);
    // What the registry holds, by tag and by digest, is what was pushed.
    for tag in ["1.0", "latest"] {
        let (status, body, content_type) = registry
            .get(reqwest::Method::GET, &format!("team/app/manifests/{tag}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body, manifest_bytes);
        assert_eq!(content_type, "application/vnd.oci.image.manifest.v1+json");
    }
    for expected in [&blob, &config] {
        let (status, body, _) = registry
            .get(
                reqwest::Method::GET,
                &format!("team/app/blobs/{}", sha(expected)),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(&body, expected);
    }

    // A rerun sends nothing.
    let again = registry::push(&tarball, &destination, &wanted, &options(256 << 10))
        .await
        .unwrap();
    assert_eq!(again.digest, pushed.digest);
    assert!(again.items.iter().all(|i| !i.sent), "{:#?}", again.items);

    if !docker_ready() {
        return;
    }
    let config_dir = tempfile::tempdir().unwrap();
    docker(
        config_dir.path(),
        &["login", &registry.host(), "-u", USER, "--password-stdin"],
        Some(PASSWORD),
    );
    let image = format!("{}/team/app:1.0", registry.host());
    docker(config_dir.path(), &["pull", &image], None);
    let repo_digests = docker(
        config_dir.path(),
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ],
        None,
    );
    assert!(repo_digests.contains(&pushed.digest), "{repo_digests}");
    let output = docker(config_dir.path(), &["run", "--rm", &image], None);
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    assert_eq!(output.trim(), marker);
}

/// A multi-platform image: the index and both platform manifests land, children first.
#[tokio::test(flavor = "multi_thread")]
async fn an_index_goes_with_its_manifests() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let registry = Registry::start();
    let (blob, diff_id) = layer(&[("data/x", noise("index", 3000), 0o644)]);
    let layers = [(blob.clone(), diff_id)];
    let (amd, amd_config) = manifest(&layers, "amd64", &["/x"]);
    let (arm, arm_config) = manifest(&layers, "arm64", &["/x"]);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&amd), "size": amd.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&arm), "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    let tarball = scratch.path().join("multi.tar");
    write_layout(
        &tarball,
        (&index, "application/vnd.oci.image.index.v1+json"),
        &[&amd, &arm, &amd_config, &arm_config, &blob],
    );
    let destination = Destination::parse(&format!("{}/multi", registry.host())).unwrap();
    let pushed = registry::push(&tarball, &destination, &tags(&["2.0"]), &options(1024))
        .await
        .unwrap();
    assert_eq!(pushed.digest, sha(&index));
    let kinds: Vec<&str> = pushed.items.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(
        &kinds[3..],
        [
            "platform manifest",
            "platform manifest",
            "image index",
            "tag 2.0"
        ]
    );
    let (status, body, content_type) = registry
        .get(reqwest::Method::GET, "multi/manifests/2.0")
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(body, index);
    for child in [&amd, &arm] {
        let (status, body, _) = registry
            .get(
                reqwest::Method::GET,
                &format!("multi/manifests/{}", sha(child)),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(&body, child);
    }

    // The same image to another repository: its blobs mounted, not sent again.
    let copy = Destination::parse(&format!("{}/copy", registry.host())).unwrap();
    let mounting = RegistryOptions {
        mount_from: vec!["multi".into()],
        ..options(1024)
    };
    let pushed = registry::push(&tarball, &copy, &tags(&["2.0"]), &mounting)
        .await
        .unwrap();
    let blobs: Vec<_> = pushed
        .items
        .iter()
        .filter(|i| i.what.starts_with("blob"))
        .collect();
    assert_eq!(blobs.len(), 3);
    assert!(
        blobs
            .iter()
            .all(|b| !b.sent && b.what.ends_with("mounted from multi)")),
        "{blobs:#?}"
    );
    let (status, body, _) = registry
        .get(reqwest::Method::GET, &format!("copy/blobs/{}", sha(&blob)))
        .await;
    assert_eq!((status, body), (200, blob));
}

/// A wrong password: the server's status, the host, and not the password.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_without_showing_it() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    let wrong = "wrong-password-do-not-print";
    set_env(Some((USER, wrong)), scratch.path(), None);
    let registry = Registry::start();
    let (tarball, _, _) = small_image(scratch.path(), "wrong");
    let destination = Destination::parse(&format!("{}/app", registry.host())).unwrap();
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    let text = format!("{error} {:?}", gradient_core::Hint::hint(&error));
    assert!(
        matches!(error, RegistryError::Auth { status: 401, .. }),
        "{text}"
    );
    assert!(
        text.contains("401") && text.contains(&registry.host()),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");
    assert!(!text.contains(USER) || !text.contains(wrong));
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    assert!(!text.contains(&encoded), "{text}");
    let (status, _, _) = registry.get(reqwest::Method::HEAD, "app/manifests/1").await;
    assert_eq!(status, 404);
}

/// Credentials from a Docker configuration: `auths`, then a credential helper.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_the_docker_configuration() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let registry = Registry::start();
    let scratch = tempfile::tempdir().unwrap();
    let destination = Destination::parse(&format!("{}/conf", registry.host())).unwrap();

    // `auths`, keyed with a scheme as `docker login` sometimes writes it.
    let config = scratch.path().join("auths");
    std::fs::create_dir(&config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        config.join("config.json"),
        json!({"auths": {format!("http://{}", registry.host()): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    set_env(None, &config, None);
    let (tarball, digest, _) = small_image(scratch.path(), "auths");
    let pushed = registry::push(&tarball, &destination, &tags(&["auths"]), &options(1024))
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);

    // A credential helper on PATH, asked for this registry.
    let helper_config = scratch.path().join("helper");
    let bin = scratch.path().join("bin");
    std::fs::create_dir_all(&helper_config).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        helper_config.join("config.json"),
        json!({"credHelpers": {registry.host(): "gradienttest"}}).to_string(),
    )
    .unwrap();
    let asked = scratch.path().join("asked");
    let script = bin.join("docker-credential-gradienttest");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '%s' \"$server\" > '{asked}'\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked = asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    set_env(None, &helper_config, Some(&bin));
    let (tarball, digest, _) = small_image(scratch.path(), "helper");
    let pushed = registry::push(&tarball, &destination, &tags(&["helper"]), &options(1024)).await;
    set_env(None, scratch.path(), None);
    assert_eq!(pushed.unwrap().digest, digest);
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), registry.host());
    let (status, _, _) = registry
        .get(reqwest::Method::HEAD, "conf/manifests/helper")
        .await;
    assert_eq!(status, 200);
}

/// A TCP proxy that drops the connection of the first `cuts` blob PATCHes it sees.
struct Proxy {
    port: u16,
    cut: Arc<AtomicUsize>,
}

async fn proxy(target: u16, cuts: usize) -> Proxy {
    proxy_answering(target, cuts, None).await
}

/// A proxy that, for the first `cuts` blob PATCHes, cuts the connection or, with
/// `answer`, answers that status line itself.
async fn proxy_answering(target: u16, cuts: usize, answer: Option<&'static str>) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicUsize::new(0));
    let counter = cut.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
                let writer = client_write.clone();
                let down = tokio::spawn(async move {
                    let mut buffer = vec![0; 64 << 10];
                    loop {
                        let n = match server_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if writer.lock().await.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buffer = vec![0; 64 << 10];
                loop {
                    let n = match client_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let patch = buffer[..n].windows(10).any(|w| w == b"PATCH /v2/");
                    if patch && counter.load(Ordering::SeqCst) < cuts {
                        counter.fetch_add(1, Ordering::SeqCst);
                        if let Some(status) = answer {
                            let reply = format!(
                                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            down.abort();
                            let _ = client_write.lock().await.write_all(reply.as_bytes()).await;
                            break;
                        }
                        // Half the request goes through, then the line is cut.
                        let _ = server_write.write_all(&buffer[..n / 2]).await;
                        break;
                    }
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                down.abort();
            });
        }
    });
    Proxy { port, cut }
}

/// A registry that drops a connection mid-upload: retried, and the push completes; one
/// that always drops it: a clear error after a few attempts, and no tag.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_uploads_are_retried_and_nothing_is_half_tagged() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let registry = Registry::start();

    let once = proxy(registry.port, 1).await;
    let destination = Destination::parse(&format!("127.0.0.1:{}/flaky", once.port)).unwrap();
    let (tarball, digest, layer) = small_image(scratch.path(), "flaky");
    let pushed = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap();
    assert_eq!(once.cut.load(Ordering::SeqCst), 1, "the proxy cut nothing");
    assert_eq!(pushed.digest, digest);
    let (status, body, _) = registry
        .get(
            reqwest::Method::GET,
            &format!("flaky/blobs/{}", sha(&layer)),
        )
        .await;
    assert_eq!((status, body), (200, layer));

    // A 503 to the first chunk: the upload is tried again.
    let busy = proxy_answering(registry.port, 1, Some("503 Service Unavailable")).await;
    let destination = Destination::parse(&format!("127.0.0.1:{}/busy", busy.port)).unwrap();
    let (tarball, digest, _) = small_image(scratch.path(), "busy");
    let pushed = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap();
    assert_eq!(
        busy.cut.load(Ordering::SeqCst),
        1,
        "the proxy answered nothing"
    );
    assert_eq!(pushed.digest, digest);
    let (status, _, _) = registry
        .get(reqwest::Method::HEAD, "busy/manifests/1")
        .await;
    assert_eq!(status, 200);

    let always = proxy(registry.port, usize::MAX).await;
    let destination = Destination::parse(&format!("127.0.0.1:{}/broken", always.port)).unwrap();
    let (tarball, _, _) = small_image(scratch.path(), "broken");
    let started = std::time::Instant::now();
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RegistryError::Connect { attempts: 4, .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{}", always.port)),
        "{text}"
    );
    assert!(
        !text.contains("_state"),
        "the upload's state is shown: {text}"
    );
    assert!(always.cut.load(Ordering::SeqCst) >= 4);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2000),
        "no backoff"
    );
    let (status, _, _) = registry
        .get(reqwest::Method::HEAD, "broken/manifests/1")
        .await;
    assert_eq!(status, 404, "a tag was written after a failed upload");
}

/// Signature, attestation and SBOM: attached, fetched back, the signature checked with the
/// public key, the referrers listed under the fallback tag; a second attach sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn attachments_go_beside_the_image_and_come_back() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let registry = Registry::start();
    let (tarball, digest, _) = small_image(scratch.path(), "signed");
    let destination = Destination::parse(&format!("{}/signed", registry.host())).unwrap();
    registry::push(&tarball, &destination, &tags(&["1.0"]), &options(1024))
        .await
        .unwrap();

    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let pem =
        p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, p256::pkcs8::LineEnding::LF).unwrap();
    let key_file = scratch.path().join("key.pem");
    std::fs::write(&key_file, pem.as_bytes()).unwrap();
    let keys = SigningKeys::load(&[key_file]).unwrap();
    let envelope =
        br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#
            .to_vec();
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#.to_vec();
    let attachments = Attachments {
        signer: keys.ecdsa.as_ref(),
        attestations: vec![Attestation {
            envelope: envelope.clone(),
            predicate_type: "https://slsa.dev/provenance/v1".into(),
        }],
        sbom: Some(sbom.clone()),
    };
    let sent = registry::attach(&destination, &digest, &attachments, &options(1024))
        .await
        .unwrap();
    assert!(
        sent.iter().any(|s| s.what.starts_with("referrers index")),
        "{sent:#?}"
    );

    // cosign's tag: one layer, the payload, the signature in its annotation.
    let hex = &digest[7..];
    let (status, body, _) = registry
        .get(
            reqwest::Method::GET,
            &format!("signed/manifests/sha256-{hex}.sig"),
        )
        .await;
    assert_eq!(status, 200);
    let sig_manifest: Value = serde_json::from_slice(&body).unwrap();
    let layer = &sig_manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(layer["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    // The referrers fallback: an image index under `sha256-HEX` listing all three.
    let (status, body, content_type) = registry
        .get(
            reqwest::Method::GET,
            &format!("signed/manifests/sha256-{hex}"),
        )
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/vnd.oci.image.index.v1+json")
    );
    let index: Value = serde_json::from_slice(&body).unwrap();
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/vnd.cyclonedx+json",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "application/vnd.dsse.envelope.v1+json",
        ]
    );
    for descriptor in index["manifests"].as_array().unwrap() {
        let (status, body, _) = registry
            .get(
                reqwest::Method::GET,
                &format!(
                    "signed/manifests/{}",
                    descriptor["digest"].as_str().unwrap()
                ),
            )
            .await;
        assert_eq!(status, 200);
        let referrer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(referrer["subject"]["digest"], digest.as_str());
        assert_eq!(referrer["artifactType"], descriptor["artifactType"]);
    }

    // Fetched back by tag, as `gradient verify IMAGE` does, and checked with the key.
    let image = ImageReference::parse(&format!("{}/signed:1.0", registry.host())).unwrap();
    let fetched = registry::fetch_attachments(&image, &RegistryOptions::default())
        .await
        .unwrap();
    assert_eq!(fetched.digest, digest);
    assert_eq!(fetched.signatures.len(), 1, "{fetched:?}");
    let public = keys.public();
    let signature = &fetched.signatures[0];
    assert!(public.ecdsa_holds(&signature.payload, &signature.signature));
    assert_eq!(signature.signed_digest().as_deref(), Some(digest.as_str()));
    assert!(signature.holds_for(&public, &digest));
    assert!(!signature.holds_for(&public, &sha(b"another image")));
    let mut flipped = signature.payload.clone();
    flipped[10] ^= 1;
    assert!(!public.ecdsa_holds(&flipped, &signature.signature));
    assert_eq!(fetched.attestations.len(), 1);
    assert_eq!(fetched.attestations[0].envelope, envelope);
    assert_eq!(
        fetched.attestations[0].predicate_type.as_deref(),
        Some("https://slsa.dev/provenance/v1")
    );
    assert_eq!(fetched.sboms, [sbom]);

    // Again: everything is there already.
    let again = registry::attach(&destination, &digest, &attachments, &options(1024))
        .await
        .unwrap();
    assert!(again.iter().all(|s| !s.sent), "{again:#?}");
}

/// A bad name or tag is refused before any request: a listener sees no connection.
#[tokio::test(flavor = "multi_thread")]
async fn bad_names_are_refused_before_any_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    for bad in [
        format!("127.0.0.1:{port}/Upper"),
        format!("127.0.0.1:{port}/a/../b"),
        format!("user:secret@127.0.0.1:{port}/app"),
        format!("127.0.0.1:{port}/app@sha256:{}", "0".repeat(64)),
        format!("127.0.0.1:{port}/app%2f"),
        format!("http://127.0.0.1:{port}/app"),
        "app".to_string(),
    ] {
        let error = Destination::parse(&bad).unwrap_err();
        assert!(
            matches!(error, RegistryError::BadDestination { .. }),
            "{bad}"
        );
        assert!(!error.to_string().is_empty());
    }
    let scratch = tempfile::tempdir().unwrap();
    let (tarball, _, _) = small_image(scratch.path(), "bad");
    let destination = Destination::parse(&format!("127.0.0.1:{port}/app")).unwrap();
    let error = registry::push(&tarball, &destination, &tags(&["bad tag"]), &options(1024))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::BadTag { .. }), "{error}");
    let error = registry::push(
        &scratch.path().join("missing.tar"),
        &destination,
        &tags(&["1"]),
        &options(1024),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, RegistryError::Tarball { .. }), "{error}");
    assert!(
        listener.accept().is_err(),
        "a request was made for a refused destination"
    );
}

/// A token service as registries use them: it checks the basic credentials and answers
/// with a JWT (ES256, its certificate in `x5c`) granting the scope asked for. It keeps
/// the scopes it was asked for.
struct TokenService {
    port: u16,
    scopes: Arc<std::sync::Mutex<Vec<String>>>,
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn token_service(key_pem: String, certificate_der: Vec<u8>) -> TokenService {
    use p256::ecdsa::signature::Signer;
    let key: p256::ecdsa::SigningKey =
        p256::pkcs8::DecodePrivateKey::from_pkcs8_pem(&key_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = scopes.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).to_string();
            let target = request.split(' ').nth(1).unwrap_or_default().to_string();
            let url = reqwest::Url::parse(&format!("http://token{target}")).unwrap();
            let scope = url
                .query_pairs()
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            let authorized = request.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("authorization:") && l[14..].trim() == expected
            });
            let (status, body) = if authorized {
                seen.lock().unwrap().push(scope.clone());
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = json!({
                    "alg": "ES256",
                    "typ": "JWT",
                    "x5c": [base64::engine::general_purpose::STANDARD.encode(&certificate_der)],
                });
                let claims = json!({
                    "iss": "gradient-test-issuer",
                    "sub": USER,
                    "aud": "gradient-test",
                    "exp": now + 300,
                    "nbf": now - 10,
                    "iat": now - 10,
                    "jti": format!("{now}-{scope}"),
                    "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
                });
                let signing_input = format!(
                    "{}.{}",
                    base64url(header.to_string().as_bytes()),
                    base64url(claims.to_string().as_bytes())
                );
                let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
                let token = format!("{signing_input}.{}", base64url(&signature.to_bytes()));
                ("200 OK", json!({"token": token}).to_string())
            } else {
                (
                    "401 Unauthorized",
                    json!({"details": "wrong credentials"}).to_string(),
                )
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    TokenService { port, scopes }
}

/// A registry that answers with a Bearer challenge: a token per scope, from its realm,
/// asked with the basic credentials; a wrong password is the token service's 401.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_from_the_realm() {
    if !require_registry() {
        return;
    }
    if !has("openssl") {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
            "CI (and GRADIENT_REQUIRE_CHECKERS=1) must provide `openssl`"
        );
        eprintln!("skipping: `openssl` is not installed");
        return;
    }
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("token.key");
    let certificate = dir.path().join("token.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=gradient-test-token",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&certificate)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let certificate_pem = std::fs::read_to_string(&certificate).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            certificate_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let service = token_service(std::fs::read_to_string(&key).unwrap(), der).await;
    let auth = format!(
        "  token:\n    realm: http://127.0.0.1:{}/token\n    service: gradient-test\n    issuer: gradient-test-issuer\n    rootcertbundle: {}\n",
        service.port,
        certificate.display()
    );
    let registry = Registry::start_with(dir, &auth);
    let scratch = tempfile::tempdir().unwrap();
    let destination = Destination::parse(&format!("{}/bearer", registry.host())).unwrap();
    let (tarball, digest, _) = small_image(scratch.path(), "bearer");

    let wrong = "bearer-wrong-password";
    set_env(Some((USER, wrong)), scratch.path(), None);
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RegistryError::Auth { status: 401, .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{}/token", service.port)),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");

    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let pushed = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);
    let scopes = service.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:bearer:pull,push".to_string()),
        "{scopes:?}"
    );
    // One token per scope, kept: not one per request.
    assert!(scopes.len() <= 3, "{scopes:?}");

    // A plain-http registry naming a plain-http realm on another host (a port forward to
    // a registry that is not ours): the credentials are not sent there in clear.
    let elsewhere = tempfile::tempdir().unwrap();
    let auth = format!(
        "  token:\n    realm: http://token.invalid:{}/token\n    service: gradient-test\n    issuer: gradient-test-issuer\n    rootcertbundle: {}\n",
        service.port,
        certificate.display()
    );
    let forwarded = Registry::start_with(elsewhere, &auth);
    let destination = Destination::parse(&format!("{}/bearer", forwarded.host())).unwrap();
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::Insecure { .. }), "{error}");
    assert!(error.to_string().contains("token.invalid"), "{error}");
}

/// A tarball whose layer is not what its manifest says: the upload is never committed,
/// and no tag is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_layer_is_never_committed() {
    if !require_registry() {
        return;
    }
    let _env = ENV.lock().await;
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let registry = Registry::start();
    let (tarball, _, layer) = small_image(scratch.path(), "changed");
    // Flip one byte of the layer inside the tar, where its data lies.
    let mut bytes = std::fs::read(&tarball).unwrap();
    let at = bytes
        .windows(layer.len())
        .position(|w| w == layer.as_slice())
        .unwrap();
    bytes[at + layer.len() / 2] ^= 0xff;
    std::fs::write(&tarball, bytes).unwrap();
    let destination = Destination::parse(&format!("{}/changed", registry.host())).unwrap();
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::BadContent { .. }), "{error}");
    assert!(error.to_string().contains(&sha(&layer)), "{error}");
    let (status, _, _) = registry
        .get(
            reqwest::Method::HEAD,
            &format!("changed/blobs/{}", sha(&layer)),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = registry
        .get(reqwest::Method::HEAD, "changed/manifests/1")
        .await;
    assert_eq!(status, 404);
}

fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A registry serving https with a certificate of a CA of its own: trusted with the CA
/// file, refused without it (and plain http, tried after on loopback, fails too), taken
/// without checking with `insecure`.
#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_custom_ca() {
    if !require_registry() {
        return;
    }
    if !has("openssl") {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
            "CI (and GRADIENT_REQUIRE_CHECKERS=1) must provide `openssl`"
        );
        eprintln!("skipping: `openssl` is not installed");
        return;
    }
    let _env = ENV.lock().await;
    let pki = tempfile::tempdir().unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-days",
                "2",
                "-subj",
                "/CN=gradient test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        pki.path(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
        pki.path(),
    );
    std::fs::write(
        pki.path().join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
        pki.path(),
    );
    let registry = Registry::start_tls(Some((
        &pki.path().join("server.pem"),
        &pki.path().join("server.key"),
    )));
    let scratch = tempfile::tempdir().unwrap();
    set_env(Some((USER, PASSWORD)), scratch.path(), None);
    let destination = Destination::parse(&format!("{}/tls", registry.host())).unwrap();
    let (tarball, digest, _) = small_image(scratch.path(), "tls");

    let error = registry::push(&tarball, &destination, &tags(&["1"]), &options(1024))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, RegistryError::Connect { .. }), "{text}");
    assert!(
        text.contains("certificate") && text.contains("plain http"),
        "{text}"
    );

    let trusted = RegistryOptions {
        ca_file: Some(pki.path().join("ca.pem")),
        ..options(1024)
    };
    let pushed = registry::push(&tarball, &destination, &tags(&["1"]), &trusted)
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);
    assert!(pushed.items.iter().all(|i| i.sent));

    let unchecked = RegistryOptions {
        insecure: true,
        ..options(1024)
    };
    let again = registry::push(&tarball, &destination, &tags(&["1"]), &unchecked)
        .await
        .unwrap();
    assert!(again.items.iter().all(|i| !i.sent), "{:#?}", again.items);

    let not_a_ca = RegistryOptions {
        ca_file: Some(pki.path().join("server.ext")),
        ..options(1024)
    };
    let error = registry::push(&tarball, &destination, &tags(&["1"]), &not_a_ca)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::Tls { .. }), "{error}");
}
