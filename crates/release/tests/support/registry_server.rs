//! A registry of its own for a test: Debian's `docker-registry` (distribution 2.8) on
//! 127.0.0.1 with a free port, in a temporary folder, behind htpasswd basic auth (one user,
//! [`USER`] with [`PASSWORD`]), optionally serving https. Shared by the release crate's
//! registry tests and the end-to-end release test (`tests/release.rs`, by `#[path]`).

use std::path::Path;
use std::process::{Child, Command};

pub const USER: &str = "gradient";
pub const PASSWORD: &str = "correct-horse-battery";

pub fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the registry's tools are here; panics when they must be.
pub fn require_registry() -> bool {
    let present = has("docker-registry") && has("htpasswd");
    if !present {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
            "CI (and GRADIENT_REQUIRE_CHECKERS=1) must provide `docker-registry` and `htpasswd` (Debian packages docker-registry, apache2-utils)"
        );
        eprintln!("skipping: `docker-registry` or `htpasswd` is not installed");
    }
    present
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A registry of its own, on 127.0.0.1, with one user.
pub struct Registry {
    _dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Registry {
    /// A registry behind htpasswd basic auth.
    pub fn start() -> Registry {
        Registry::start_tls(None)
    }

    /// A registry behind htpasswd basic auth, serving https with `tls` (certificate and key
    /// files) when given.
    pub fn start_tls(tls: Option<(&Path, &Path)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let line = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .unwrap();
        assert!(line.status.success());
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, &line.stdout).unwrap();
        let auth = format!(
            "  htpasswd:\n    realm: basic-realm\n    path: {}\n",
            htpasswd.display()
        );
        let http = match tls {
            Some((certificate, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ),
            None => String::new(),
        };
        Registry::start_configured(dir, &auth, &http)
    }

    /// A registry in `dir` with the `auth:` section `auth`.
    pub fn start_with(dir: tempfile::TempDir, auth: &str) -> Registry {
        Registry::start_configured(dir, auth, "")
    }

    /// A registry in `dir` with the `auth:` section `auth` and more of `http:` (TLS).
    pub fn start_configured(dir: tempfile::TempDir, auth: &str, http: &str) -> Registry {
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http}auth:\n{auth}",
            root = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            _dir: dir,
            child,
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the registry did not start on port {port}");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A GET or HEAD straight to the registry, with the right credentials: what it holds.
    pub async fn get(&self, method: reqwest::Method, path: &str) -> (u16, Vec<u8>, String) {
        let response = reqwest::Client::new()
            .request(method, format!("http://{}/v2/{path}", self.host()))
            .basic_auth(USER, Some(PASSWORD))
            .header(
                "accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            status,
            response.bytes().await.unwrap().to_vec(),
            content_type,
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
