//! What the release tests share: signing keys made with gpg and openssl, a byte flipped in
//! a file, gpg's verdict with one public key, and servers of their own on 127.0.0.1 — a
//! pypiserver, and Debian's docker-registry (the release crate's test support, by path).

use crate::util::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[path = "../crates/release/tests/support/registry_server.rs"]
#[allow(dead_code)]
mod registry_server;
pub use registry_server::{
    require_registry, Registry, PASSWORD as REGISTRY_PASSWORD, USER as REGISTRY_USER,
};

/// Signing keys made once per test run: an OpenPGP key pair (gpg) and an ECDSA P-256 key
/// pair (openssl), in a folder with its own GNUPGHOME.
pub struct Keys {
    dir: PathBuf,
}

impl Keys {
    pub fn pgp_secret(&self) -> PathBuf {
        self.dir.join("release.asc")
    }
    pub fn pgp_public(&self) -> PathBuf {
        self.dir.join("release.pub.asc")
    }
    pub fn ec_secret(&self) -> PathBuf {
        self.dir.join("cosign.key")
    }
    pub fn ec_public(&self) -> PathBuf {
        self.dir.join("cosign.pub")
    }
    pub fn gnupg_home(&self) -> PathBuf {
        self.dir.join("gnupg")
    }
}

pub fn tools() -> bool {
    require("gpg") && require("openssl")
}

/// Make a fresh pair of each kind in `dir`.
pub fn make_keys(dir: &Path) -> Keys {
    let keys = Keys {
        dir: dir.to_path_buf(),
    };
    let home = keys.gnupg_home();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let output = run(Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args));
        assert!(output.status.success());
        output.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "Release Test <release@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    std::fs::write(keys.pgp_secret(), gpg(&["--armor", "--export-secret-keys"])).unwrap();
    std::fs::write(keys.pgp_public(), gpg(&["--armor", "--export"])).unwrap();
    let openssl = |args: &[&str]| {
        let output = run(Command::new("openssl").args(args));
        assert!(output.status.success());
    };
    let ec = keys.ec_secret();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        ec.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        ec.to_str().unwrap(),
        "-pubout",
        "-out",
        keys.ec_public().to_str().unwrap(),
    ]);
    keys
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-keys");
        let _ = std::fs::remove_dir_all(&dir);
        make_keys(&dir)
    })
}

/// `path` with one byte flipped at `at` (from the end when negative).
pub fn flip_byte(path: &Path, at: i64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = if at < 0 { bytes.len() as i64 + at } else { at } as usize;
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// `gpg --verify ARGS` against `public` alone (a GNUPGHOME that holds nothing else).
pub fn gpg_verifies(dir: &Path, public: &Path, args: &[&Path]) -> bool {
    let home = tempfile::tempdir_in(dir).unwrap();
    let gpg = || {
        let mut command = Command::new("gpg");
        command.env("GNUPGHOME", home.path()).arg("--batch");
        command
    };
    assert!(run(gpg().arg("--import").arg(public)).status.success());
    let verified = run(gpg().arg("--verify").args(args));
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "all"])
        .output();
    verified.status.success() && stderr(&verified).contains("Good signature")
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something answers on `port`.
pub fn wait_for(port: u16, child: &mut Child) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited before it listened: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process ended when the test ends, however it ends.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A venv with pypiserver (and passlib, bcrypt for its htpasswd file), made once and kept
/// in the target folder between runs; `None` (a skip, or a failure where tools are
/// required) when it cannot be installed.
pub fn pypiserver_venv() -> Option<PathBuf> {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pypiserver-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import pypiserver, passlib, bcrypt"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&python) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = run(Command::new(host_python()).args(["-m", "venv"]).arg(&venv));
        // passlib 1.7.4 (the last) breaks on bcrypt from 4.1 on.
        let installed = made.status.success()
            && run(Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "pypiserver",
                "passlib",
                "bcrypt<4.1",
            ]))
            .status
            .success();
        if !installed || !ready(&python) {
            assert!(
                std::env::var_os("CI").is_none()
                    && std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
                "CI (and GRADIENT_REQUIRE_CHECKERS=1) must be able to pip-install pypiserver"
            );
            eprintln!("skipping: pypiserver cannot be installed");
            return None;
        }
    }
    Some(venv)
}

/// A pypiserver on 127.0.0.1 serving `packages`, uploads allowed to `user`:`password`;
/// the sample's dependencies (click, msgpack) are put there first, so that pip installs
/// from this index alone.
pub struct Pypiserver {
    pub port: u16,
    pub packages: PathBuf,
    _process: Running,
}

impl Pypiserver {
    pub fn start(venv: &Path, dir: &Path, user: &str, password: &str) -> Pypiserver {
        let packages = dir.join("packages");
        std::fs::create_dir_all(&packages).unwrap();
        let wheelhouse = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pypiserver-deps");
        if !wheelhouse.join("done").exists() {
            let downloaded = run(Command::new(venv.join("bin/pip"))
                .args(["download", "--quiet", "--only-binary", ":all:", "-d"])
                .arg(&wheelhouse)
                .args(["click>=8.1", "msgpack>=1.0"]));
            assert!(
                downloaded.status.success(),
                "the sample's dependencies download"
            );
            std::fs::write(wheelhouse.join("done"), "").unwrap();
        }
        for entry in std::fs::read_dir(&wheelhouse).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "whl") {
                std::fs::copy(&path, packages.join(path.file_name().unwrap())).unwrap();
            }
        }
        let htpasswd = dir.join("htpasswd");
        // The password goes in on stdin, not on a command line.
        let made = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import sys\nfrom passlib.apache import HtpasswdFile\nh = HtpasswdFile(sys.argv[1], new=True, default_scheme='bcrypt')\nh.set_password(sys.argv[2], sys.stdin.read())\nh.save()",
            ])
            .arg(&htpasswd)
            .arg(user)
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(password.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(made.status.success(), "the htpasswd file is written");
        let port = free_port();
        let mut child = Command::new(venv.join("bin/pypi-server"))
            .args(["run", "--interface", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--passwords")
            .arg(&htpasswd)
            .args(["--authenticate", "update", "--disable-fallback"])
            .arg(&packages)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pypiserver.log")).unwrap())
            .spawn()
            .expect("pypi-server starts");
        wait_for(port, &mut child);
        Pypiserver {
            port,
            packages,
            _process: Running(child),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// A clean Debian root in `dir` whose only apt source is the repository `repo` (copied to
/// `/srv/repo`), `signed-by` the key `keyring`; `apt-get update` has read it there, without
/// a warning.
pub fn debian_root_with_repository(dir: &Path, repo: &Path, keyring: &Path) -> PathBuf {
    let root = fresh_root(dir);
    let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
    let _ = std::fs::remove_dir_all(root.join("etc/apt/sources.list.d"));
    std::fs::create_dir_all(root.join("etc/apt/sources.list.d")).unwrap();
    std::fs::create_dir_all(root.join("etc/apt/keyrings")).unwrap();
    std::fs::copy(
        keyring,
        root.join("etc/apt/keyrings/sampleapp-archive-keyring.asc"),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/apt/sources.list.d/sampleapp.list"),
        "deb [signed-by=/etc/apt/keyrings/sampleapp-archive-keyring.asc] file:/srv/repo ./\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("srv")).unwrap();
    assert!(run(Command::new("cp")
        .arg("-a")
        .arg(repo)
        .arg(root.join("srv/repo")))
    .status
    .success());
    let updated = chroot(&root, &["apt-get", "update"]);
    assert!(
        updated.status.success(),
        "apt-get update reads the repository"
    );
    let said = format!("{}{}", stdout(&updated), stderr(&updated));
    assert!(!said.contains("W:") && !said.contains("E:"), "{said}");
    root
}
