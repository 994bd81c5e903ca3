//! A runtime archive named by URL: downloaded from a server on 127.0.0.1 that serves an
//! archive this test made, kept only with the right digest, reused from the cache without
//! asking again; and an archive checked against the platform it is asked for.

use gradient_core::Platform;
use gradient_python::runtime::{
    checked_runtime_archive, downloads_folder, fetch_runtime_archive, unpack_runtime_archive,
    RuntimeError,
};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A server on 127.0.0.1 that answers `/good.tar.gz` with `body`, `/short.tar.gz` with half
/// of it under the full length, anything else with 404; and counts the requests.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let path = request_line.split_whitespace().nth(1).unwrap_or_default();
                let head = |status: &str, length: usize| {
                    format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
                };
                let _ = match path {
                    "/good.tar.gz" => stream
                        .write_all(head("200 OK", body.len()).as_bytes())
                        .and_then(|()| stream.write_all(&body)),
                    "/short.tar.gz" => stream
                        .write_all(head("200 OK", body.len()).as_bytes())
                        .and_then(|()| stream.write_all(&body[..body.len() / 2])),
                    "/elsewhere.tar.gz" => stream.write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: http://example.org/a.tar.gz\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                    _ => stream
                        .write_all(head("404 Not Found", 9).as_bytes())
                        .and_then(|()| stream.write_all(b"not found")),
                };
            }
        });
        Server { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A `.tar.gz` holding `python/bin/NAME` (a copy of `program`), as python-build-standalone's
/// `install_only` archives lay out their interpreter.
fn archive_with(dir: &Path, program: &Path, name: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{name}"));
    std::fs::create_dir_all(tree.join("python/bin")).unwrap();
    std::fs::copy(program, tree.join("python/bin").join(name)).unwrap();
    let archive = dir.join(format!(
        "{name}-{}.tar.gz",
        program.file_name().unwrap().to_string_lossy()
    ));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg("python")
        .status()
        .unwrap();
    assert!(status.success());
    archive
}

/// A real aarch64 program, compiled here with the cross compiler.
fn aarch64_program(dir: &Path) -> PathBuf {
    let source = dir.join("hello.c");
    std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
    let program = dir.join("hello-aarch64");
    let status = Command::new("aarch64-linux-gnu-gcc")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .expect("aarch64-linux-gnu-gcc runs");
    assert!(status.success());
    program
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file left in the downloads folder.
fn left_in(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(downloads_folder(cache)) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_download_is_kept_once_with_its_digest_and_reused_without_asking_again() {
    let work = tempfile::tempdir().unwrap();
    let archive = archive_with(work.path(), &aarch64_program(work.path()), "python3.11");
    let body = std::fs::read(&archive).unwrap();
    let digest = sha256(&body);
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |received: u64, total: Option<u64>| seen.lock().unwrap().push((received, total));

    let fetched = fetch_runtime_archive(
        &server.url("/good.tar.gz"),
        &digest,
        cache.path(),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(
        fetched,
        downloads_folder(cache.path()).join(format!("{digest}.tar.gz"))
    );
    assert_eq!(std::fs::read(&fetched).unwrap(), body);
    assert_eq!(server.requests(), 1);
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&(body.len() as u64, Some(body.len() as u64)))
    );
    assert_eq!(left_in(cache.path()), [format!("{digest}.tar.gz")]);

    // The second time, the cache answers: the server is not asked.
    let again = fetch_runtime_archive(
        &server.url("/good.tar.gz"),
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(again, fetched);
    assert_eq!(server.requests(), 1);

    // A damaged cached copy is hashed, found wrong, and fetched again.
    std::fs::write(&fetched, b"damaged").unwrap();
    fetch_runtime_archive(
        &server.url("/good.tar.gz"),
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(server.requests(), 2);
    assert_eq!(std::fs::read(&fetched).unwrap(), body);

    // The download is an archive for linux/arm64 of CPython 3.11: checked as such.
    let interpreter =
        checked_runtime_archive(&fetched, Platform::LinuxArm64, "3.11", cache.path()).unwrap();
    assert!(
        interpreter.ends_with("python/bin/python3.11"),
        "{}",
        interpreter.display()
    );
}

#[tokio::test]
async fn a_wrong_digest_a_short_body_and_a_404_keep_nothing() {
    let work = tempfile::tempdir().unwrap();
    let archive = archive_with(work.path(), &aarch64_program(work.path()), "python3.11");
    let body = std::fs::read(&archive).unwrap();
    let digest = sha256(&body);
    let wrong = sha256(b"another archive");
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().unwrap();

    let err = fetch_runtime_archive(
        &server.url("/good.tar.gz"),
        &wrong,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RuntimeError::DigestMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&digest) && text.contains(&wrong), "{text}");
    assert!(text.contains("nothing was kept"), "{text}");
    assert_eq!(
        left_in(cache.path()),
        Vec::<String>::new(),
        "no temporary file is left"
    );

    let err = fetch_runtime_archive(
        &server.url("/short.tar.gz"),
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RuntimeError::DownloadFailed { .. }), "{err}");
    let half = body.len() / 2;
    assert!(
        err.to_string().contains(&format!(
            "/short.tar.gz was not downloaded: the transfer broke off after {half} of {} bytes",
            body.len()
        )),
        "{err}"
    );
    assert_eq!(left_in(cache.path()), Vec::<String>::new());

    let err = fetch_runtime_archive(
        &server.url("/gone.tar.gz"),
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the server answered 404 Not Found"),
        "{err}"
    );
    assert_eq!(left_in(cache.path()), Vec::<String>::new());
    assert_eq!(server.requests(), 3);

    // A redirect to plain http elsewhere is refused as the URL itself would be.
    let err = fetch_runtime_archive(
        &server.url("/elsewhere.tar.gz"),
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused a redirect: `url` uses plain http to `example.org`"),
        "{err}"
    );
    assert_eq!(left_in(cache.path()), Vec::<String>::new());
    assert_eq!(server.requests(), 4);

    // Plain http elsewhere is refused before anything is asked.
    let err = fetch_runtime_archive(
        "http://example.org/a.tar.gz",
        &digest,
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RuntimeError::DownloadRefused { .. }), "{err}");
}

#[tokio::test]
async fn an_archive_for_another_machine_or_version_is_refused_naming_both() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let build_python =
        gradient_python::find_interpreter(&gradient_python::PythonRequest::Default, cache.path())
            .await
            .unwrap();
    let version = build_python.short_version();
    // The build interpreter itself: an x86_64 program of the right X.Y.
    let x86 = archive_with(
        work.path(),
        &build_python.executable,
        &format!("python{version}"),
    );
    let err = unpack_runtime_archive(&x86, Platform::LinuxArm64, &build_python, cache.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ArchiveOtherPlatform { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "holds a CPython for linux x86_64, and this build is for linux/arm64 (aarch64)"
        ),
        "{text}"
    );

    let arm = archive_with(work.path(), &aarch64_program(work.path()), "python3.99");
    let err = unpack_runtime_archive(&arm, Platform::LinuxArm64, &build_python, cache.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ArchiveOtherVersion { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!(
            "holds CPython 3.99, but the build interpreter is {version}"
        )),
        "{err}"
    );

    // The right machine and X.Y passes the checks; bundling it is the driver's next step.
    let arm = archive_with(
        work.path(),
        &aarch64_program(work.path()),
        &format!("python{version}"),
    );
    let err = unpack_runtime_archive(&arm, Platform::LinuxArm64, &build_python, cache.path())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ArchiveForeign { .. }), "{err}");

    // The host's archive of the build interpreter's machine goes the whole way, as before:
    // the aarch64 program asked for as the host's is refused by the same check.
    if Platform::host() == Some(Platform::LinuxAmd64) {
        let err = unpack_runtime_archive(&arm, Platform::LinuxAmd64, &build_python, cache.path())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "holds a CPython for linux aarch64, and this build is for linux/amd64 (x86_64)"
            ),
            "{err}"
        );
    }
}

/// The whole host path: a relocatable CPython (the build interpreter's own bundle, packed
/// as python-build-standalone packs theirs) is served, downloaded, unpacked, run for its
/// facts and found to be the build interpreter's X.Y.
#[tokio::test]
async fn a_downloaded_relocatable_cpython_for_the_host_is_unpacked_and_runs() {
    let Some(host) = Platform::host() else {
        eprintln!("skipped: this machine is no platform gradient builds for");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let build_python =
        gradient_python::find_interpreter(&gradient_python::PythonRequest::Default, cache.path())
            .await
            .unwrap();
    let stdlib = gradient_python::runtime::StdlibChoice::of(&Default::default());
    let runtime =
        gradient_python::runtime::build_runtime(&build_python, &stdlib, false, cache.path())
            .await
            .unwrap();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("cpython-install_only.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&runtime.dir)
        .arg("--transform=s,^\\.,python,")
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let body = std::fs::read(&archive).unwrap();
    let server = Server::start(body.clone());

    let fetched = fetch_runtime_archive(
        &server.url("/good.tar.gz"),
        &sha256(&body),
        cache.path(),
        &|_, _| {},
    )
    .await
    .unwrap();
    let facts = unpack_runtime_archive(&fetched, host, &build_python, cache.path())
        .await
        .unwrap();
    assert_eq!(facts.short_version(), build_python.short_version());
    assert!(
        facts
            .executable
            .starts_with(cache.path().join("runtime-archives")),
        "{}",
        facts.executable.display()
    );
    assert_eq!(server.requests(), 1);
}
