//! `gradient publish` and `gradient verify` on the sample's output folder: the folder signed
//! with keys the test makes (gpg, openssl), each signature checked by an independent tool
//! (gpg, Python's `cryptography`), and `verify` failing on a flipped byte in any artifact,
//! signature or attestation.

use crate::release_support::*;
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The sample's sdist, wheel and zipapp, built once; each test signs a copy.
fn built_folder() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-built");
            let _ = std::fs::remove_dir_all(&out);
            let output = build(
                &fixture("sampleapp"),
                &out,
                &["--to", "sdist,wheel,zipapp", "--no-smoke"],
            );
            assert!(output.status.success());
            out
        })
        .clone()
}

/// A copy of the built folder, published with both keys.
fn published() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&built_folder(), dir.path());
    let keys = keys();
    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(keys.pgp_secret())
        .arg("--key")
        .arg(keys.ec_secret()));
    assert!(output.status.success());
    dir
}

fn verify(dir: &Path) -> std::process::Output {
    let keys = keys();
    run(gradient()
        .arg("verify")
        .arg(dir)
        .arg("--key")
        .arg(keys.pgp_public())
        .arg("--key")
        .arg(keys.ec_public()))
}

#[test]
fn a_published_folder_verifies_and_its_signatures_hold_for_gpg_and_pythons_cryptography() {
    if !tools() || !require_python_module("cryptography") {
        return;
    }
    let dir = published();
    let output = verify(dir.path());
    assert!(output.status.success());
    assert!(stdout(&output).contains(", 0 failing"));

    // gpg checks SHA256SUMS.asc with the public key alone, in a keyring of its own.
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&std::ffi::OsStr]| {
        run(Command::new("gpg")
            .env("GNUPGHOME", home.path())
            .arg("--batch")
            .args(args))
    };
    assert!(gpg(&["--import".as_ref(), keys().pgp_public().as_os_str()])
        .status
        .success());
    let checked = gpg(&[
        "--verify".as_ref(),
        dir.path().join("SHA256SUMS.asc").as_os_str(),
        dir.path().join("SHA256SUMS").as_os_str(),
    ]);
    assert!(checked.status.success());
    assert!(stderr(&checked).contains("Good signature"));
    // And `sha256sum -c` agrees with the list it signed.
    let sums = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path()));
    assert!(sums.status.success());

    // The DSSE envelope, checked by another implementation: PAE, ECDSA P-256 over SHA-256
    // with the public key, the in-toto v1 statement, each subject's digest against its file.
    let script = r#"
import base64, hashlib, json, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
envelope_file, public_key, folder = sys.argv[1:]
key = serialization.load_pem_public_key(open(public_key, "rb").read())
lines = [l for l in open(envelope_file) if l.strip()]
assert len(lines) == 1, lines
envelope = json.loads(lines[0])
payload = base64.b64decode(envelope["payload"])
kind = envelope["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
statement = json.loads(payload)
assert statement["_type"] == "https://in-toto.io/Statement/v1"
assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
build = statement["predicate"]["buildDefinition"]
assert build["externalParameters"]["command"][:2] == ["gradient", "build"], build
for subject in statement["subject"]:
    with open(os.path.join(folder, subject["name"]), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == subject["digest"]["sha256"], subject
print("verified", len(statement["subject"]), "subjects")
"#;
    let python = run(Command::new(host_python())
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("sampleapp-1.2.3.intoto.jsonl"))
        .arg(keys().ec_public())
        .arg(dir.path()));
    assert!(python.status.success());
    assert!(stdout(&python).contains("verified 8 subjects"));
}

#[test]
fn a_rerun_of_publish_writes_nothing_new() {
    if !tools() {
        return;
    }
    let dir = published();
    let before: Vec<(String, String)> = listing(dir.path())
        .into_iter()
        .map(|f| (sha256_file(&dir.path().join(&f)), f))
        .collect();
    let keys = keys();
    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(keys.pgp_secret())
        .arg("--key")
        .arg(keys.ec_secret()));
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(!text.lines().any(|l| l.starts_with("sent")), "{text}");
    assert_eq!(text.matches("already there").count(), 2, "{text}");
    let after: Vec<(String, String)> = listing(dir.path())
        .into_iter()
        .map(|f| (sha256_file(&dir.path().join(&f)), f))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn verify_fails_on_a_flipped_byte_in_an_artifact_naming_it() {
    if !tools() {
        return;
    }
    let dir = published();
    flip_byte(&dir.path().join("sampleapp-1.2.3.pyz"), 4096);
    let output = verify(dir.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let failing: Vec<&str> = text.lines().filter(|l| l.starts_with("FAILS")).collect();
    assert_eq!(failing.len(), 2, "{text}");
    assert!(failing.iter().all(|l| l.contains("sampleapp-1.2.3.pyz  ")));
    assert!(failing.iter().any(|l| l.contains("digest")));
    assert!(failing.iter().any(|l| l.contains("provenance")));
}

#[test]
fn verify_fails_on_a_flipped_byte_in_the_checksums_signature() {
    if !tools() {
        return;
    }
    let dir = published();
    let signature = dir.path().join("SHA256SUMS.asc");
    // A byte of the base64 body, inside the signature packet.
    let text = std::fs::read_to_string(&signature).unwrap();
    let body = text.find("\n\n").unwrap() + 20;
    flip_byte(&signature, body as i64);
    let output = verify(dir.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAILS") && l.contains("SHA256SUMS.asc  signature")),
        "{text}"
    );
}

#[test]
fn verify_fails_on_a_flipped_byte_in_the_attestation() {
    if !tools() {
        return;
    }
    let dir = published();
    let provenance = dir.path().join("sampleapp-1.2.3.intoto.jsonl");
    // A byte of the base64 payload: the statement no longer matches its signature.
    let text = std::fs::read_to_string(&provenance).unwrap();
    let payload = text.find("\"payload\":\"").unwrap() + 40;
    flip_byte(&provenance, payload as i64);
    let output = verify(dir.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAILS")
                && l.contains("sampleapp-1.2.3.intoto.jsonl:1  signature")),
        "{text}"
    );
    // Nothing attested any more: every file is named as not covered.
    assert!(text
        .lines()
        .any(|l| l.starts_with("FAILS") && l.contains("the provenance does not name it")));
}

/// The sha256 of `path`, as the manifest writes it.
fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn verify_refuses_an_older_envelope_appended_and_a_file_removed_with_its_record() {
    if !tools() {
        return;
    }
    let keys = keys();
    let verify_ec = |dir: &Path| {
        run(gradient()
            .arg("verify")
            .arg(dir)
            .arg("--key")
            .arg(keys.ec_public()))
    };
    let provenance = "sampleapp-1.2.3.intoto.jsonl";
    let sdist = "sampleapp-1.2.3.tar.gz";

    // Another folder of the same release whose sdist differs, validly attested by the key:
    // its envelope, appended to the first folder's, disagrees with the first on the sdist.
    let other = tempfile::tempdir().unwrap();
    copy_tree(&built_folder(), other.path());
    let old = sha256_hex(&other.path().join(sdist));
    let mut bytes = std::fs::read(other.path().join(sdist)).unwrap();
    bytes.push(0);
    std::fs::write(other.path().join(sdist), bytes).unwrap();
    let new = sha256_hex(&other.path().join(sdist));
    let manifest = other.path().join("gradient-manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(&old, &new);
    std::fs::write(&manifest, text).unwrap();
    let output = run(gradient()
        .arg("publish")
        .arg(other.path())
        .arg("--key")
        .arg(keys.ec_secret()));
    assert!(output.status.success());
    let dir = published();
    let mut lines = std::fs::read_to_string(dir.path().join(provenance)).unwrap();
    lines.push_str(&std::fs::read_to_string(other.path().join(provenance)).unwrap());
    std::fs::write(dir.path().join(provenance), lines).unwrap();
    let output = verify_ec(dir.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.lines().any(|l| l.starts_with("FAILS")
            && l.contains(&format!("{sdist}  provenance"))
            && l.contains("disagree")),
        "{text}"
    );

    // The zipapp and its record removed: the provenance still names it.
    let dir = published();
    let manifest = dir.path().join("gradient-manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    json["artifacts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["tier"] != "zipapp");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    std::fs::remove_file(dir.path().join("sampleapp-1.2.3.pyz")).unwrap();
    let output = verify_ec(dir.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.lines().any(|l| l.starts_with("FAILS")
            && l.contains("sampleapp-1.2.3.pyz  provenance")
            && l.contains("does not list it")),
        "{text}"
    );
}

#[test]
fn verify_with_another_key_fails_and_without_signatures_a_given_key_fails_too() {
    if !tools() {
        return;
    }
    let dir = published();
    let other = tempfile::tempdir().unwrap();
    let stranger = make_keys(other.path());
    let output = run(gradient()
        .arg("verify")
        .arg(dir.path())
        .arg("--key")
        .arg(stranger.pgp_public())
        .arg("--key")
        .arg(stranger.ec_public()));
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("FAILS      SHA256SUMS.asc  signature"),
        "{text}"
    );
    assert!(
        text.contains("no signature in it was made by the given key"),
        "{text}"
    );

    // An unsigned folder checked with keys: the missing signatures are failures.
    let unsigned = tempfile::tempdir().unwrap();
    copy_tree(&built_folder(), unsigned.path());
    let output = verify(unsigned.path());
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("the folder is not signed"), "{text}");
    assert!(text.contains("the folder is not attested"), "{text}");
}

#[test]
fn publish_refuses_a_damaged_folder_a_public_key_and_a_missing_key_writing_nothing() {
    if !tools() {
        return;
    }
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&built_folder(), dir.path());
    let before = listing(dir.path());

    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(keys.pgp_public()));
    fails_with(&output, 2, &["it is a public key", "hint:"]);

    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(dir.path().join("no-such.key")));
    fails_with(&output, 2, &["cannot read the key file", "no-such.key"]);

    flip_byte(&dir.path().join("sampleapp-1.2.3.tar.gz"), 100);
    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(keys.pgp_secret()));
    fails_with(
        &output,
        2,
        &["sampleapp-1.2.3.tar.gz", "does not match the manifest"],
    );
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn publish_refuses_a_manifest_whose_project_name_or_version_would_lead_out_of_the_folder() {
    if !tools() {
        return;
    }
    let keys = keys();
    let outside = tempfile::tempdir().unwrap();
    for (field, value) in [
        ("name", outside.path().join("pwn").display().to_string()),
        ("name", "x/../../../../pwn".to_string()),
        ("name", "sampleapp\nOrigin: forged".to_string()),
        ("version", "1/../../pwn".to_string()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&built_folder(), dir.path());
        let manifest = dir.path().join("gradient-manifest.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        json["project"][field] = serde_json::Value::String(value.clone());
        std::fs::write(&manifest, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        let before = listing(dir.path());
        let output = run(gradient()
            .arg("publish")
            .arg(dir.path())
            .arg("--key")
            .arg(keys.pgp_secret())
            .arg("--key")
            .arg(keys.ec_secret()));
        fails_with(
            &output,
            2,
            &[&format!("the manifest's project {field}"), "is not valid"],
        );
        assert_eq!(listing(dir.path()), before, "{field} {value:?}");
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside for {field} {value:?}"
        );
    }
}

#[test]
fn a_protected_openpgp_key_signs_with_its_passphrase_from_the_environment_never_shown() {
    if !tools() {
        return;
    }
    let passphrase = "correct-horse-battery-staple-4711";
    let home = tempfile::tempdir().unwrap();
    let gnupg = home.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let output = run(Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
            ])
            .args(args));
        assert!(output.status.success());
        output.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "Protected <protected@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let secret = home.path().join("protected.asc");
    std::fs::write(&secret, gpg(&["--armor", "--export-secret-keys"])).unwrap();
    let public = home.path().join("protected.pub.asc");
    std::fs::write(&public, gpg(&["--armor", "--export"])).unwrap();

    let dir = tempfile::tempdir().unwrap();
    copy_tree(&built_folder(), dir.path());
    let wrong = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(&secret)
        .env("GRADIENT_KEY_PASSPHRASE", "not-the-passphrase-0815"));
    fails_with(&wrong, 2, &["could not sign", "GRADIENT_KEY_PASSPHRASE"]);
    assert!(!dir.path().join("SHA256SUMS.asc").exists());

    let output = run(gradient()
        .arg("publish")
        .arg(dir.path())
        .arg("--key")
        .arg(&secret)
        .env("GRADIENT_KEY_PASSPHRASE", passphrase));
    assert!(output.status.success());
    let verified = run(gradient()
        .arg("verify")
        .arg(dir.path())
        .arg("--key")
        .arg(&public));
    assert!(verified.status.success());
    for output in [&wrong, &output, &verified] {
        for text in [stdout(output), stderr(output)] {
            assert!(!text.contains(passphrase) && !text.contains("not-the-passphrase"));
        }
    }
    for file in listing(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(passphrase), "{file} holds the passphrase");
    }
}

/// The issue's acceptance, end to end on 127.0.0.1: `build --all --publish` pushes the
/// image to a registry, uploads the wheel and sdist to an index and writes signed apt and
/// yum repositories; then `docker pull` + `docker run`, `pip install --index-url` and
/// `apt-get install` in a clean Debian root each run the sample, `gradient verify` holds
/// for the folder and the image, and no credential shows anywhere.
#[test]
fn build_all_publish_then_docker_pip_and_apt_each_run_the_sample() {
    if !tools() || !require_registry() || !can_chroot() || !docker_engine() {
        return;
    }
    let Some(venv) = pypiserver_venv() else {
        return;
    };
    const INDEX_USER: &str = "uploader";
    const INDEX_PASSWORD: &str = "index-secret-5b2e91";
    const PASSPHRASE_IN_ENV: &str = "unused-passphrase-7c41d0";
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let index = Pypiserver::start(&venv, work.path(), INDEX_USER, INDEX_PASSWORD);
    let keys = keys();
    let out = work.path().join("dist");
    let image = format!("{}/team/sampleapp", registry.host());
    let published = run(gradient()
        .args(["build", "--all", "--publish"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&out)
        .args(["--image", &image, "--index", &index.url()])
        .arg("--key")
        .arg(keys.pgp_secret())
        .arg("--key")
        .arg(keys.ec_secret())
        .env("GRADIENT_REGISTRY_USERNAME", REGISTRY_USER)
        .env("GRADIENT_REGISTRY_PASSWORD", REGISTRY_PASSWORD)
        .env("GRADIENT_INDEX_USERNAME", INDEX_USER)
        .env("GRADIENT_INDEX_PASSWORD", INDEX_PASSWORD)
        .env("GRADIENT_KEY_PASSPHRASE", PASSPHRASE_IN_ENV));
    assert!(published.status.success());
    let said = stdout(&published);
    for sent in [
        "tag 1.2.3",
        "tag latest",
        "sampleapp-1.2.3-py3-none-any.whl",
        "sampleapp-1.2.3.tar.gz",
        "sampleapp_1.2.3-1_amd64.deb",
        "sampleapp-1.2.3-1.x86_64.rpm",
        "SHA256SUMS.asc",
        "sampleapp-1.2.3.intoto.jsonl",
    ] {
        assert!(
            said.lines()
                .any(|l| l.starts_with("sent") && l.contains(sent)),
            "{sent} in:\n{said}"
        );
    }

    // Offline, with the public keys: the folder and its repositories, then the image.
    let verified = verify(&out);
    assert!(verified.status.success());
    let checks = stdout(&verified);
    assert!(
        checks.contains("apt/InRelease") && checks.contains("yum/repodata/repomd.xml"),
        "{checks}"
    );
    let image_verified = run(gradient()
        .arg("verify")
        .arg(format!("{image}:1.2.3"))
        .arg("--key")
        .arg(keys.ec_public())
        .env("GRADIENT_REGISTRY_USERNAME", REGISTRY_USER)
        .env("GRADIENT_REGISTRY_PASSWORD", REGISTRY_PASSWORD));
    assert!(image_verified.status.success());
    assert!(stdout(&image_verified).contains("3 checks, 0 failing"));

    // docker pull and run of what was pushed, logged in with a configuration of its own.
    let docker_config = work.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let docker = |args: &[&str], stdin: Option<&str>| {
        let mut command = Command::new("docker");
        command.env("DOCKER_CONFIG", &docker_config).args(args);
        if let Some(text) = stdin {
            use std::io::Write;
            command.stdin(std::process::Stdio::piped());
            let mut child = command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            return child.wait_with_output().unwrap();
        }
        run(&mut command)
    };
    let login = docker(
        &[
            "login",
            "--username",
            REGISTRY_USER,
            "--password-stdin",
            &registry.host(),
        ],
        Some(REGISTRY_PASSWORD),
    );
    assert!(login.status.success(), "{}", stderr(&login));
    let reference = format!("{image}:1.2.3");
    assert!(docker(&["pull", &reference], None).status.success());
    let ran = docker(&["run", "--rm", &reference, "greet", "Ada"], None);
    let _ = docker(&["rmi", &reference], None);
    assert!(ran.status.success());
    assert_eq!(stdout(&ran).trim(), "Hello, Ada!");

    // pip install from the index alone, into a fresh venv that sees nothing of the host's.
    let env = work.path().join("venv");
    assert!(
        run(Command::new(host_python()).args(["-m", "venv"]).arg(&env))
            .status
            .success()
    );
    let installed = run(Command::new(env.join("bin/pip"))
        .args(["install", "--isolated", "--quiet", "--index-url"])
        .arg(format!("{}simple/", index.url()))
        .arg("sampleapp==1.2.3"));
    assert!(installed.status.success());
    let ran = run(Command::new(env.join("bin/sampleapp")).args(["greet", "Ada"]));
    assert_eq!(stdout(&ran).trim(), "Hello, Ada!");

    // apt-get install in a clean Debian root, from the repository the publish wrote.
    let root = debian_root_with_repository(
        work.path(),
        &out.join("apt"),
        &out.join("apt/sampleapp-archive-keyring.asc"),
    );
    assert!(chroot(&root, &["apt-get", "install", "-y", "sampleapp"])
        .status
        .success());
    let ran = chroot(&root, &["sampleapp", "greet", "Ada"]);
    assert_eq!(stdout(&ran).trim(), "Hello, Ada!");

    // No credential in what gradient printed or wrote.
    let secrets = [REGISTRY_PASSWORD, INDEX_PASSWORD, PASSPHRASE_IN_ENV];
    for output in [&published, &verified, &image_verified] {
        for text in [stdout(output), stderr(output)] {
            for secret in secrets {
                assert!(!text.contains(secret), "a secret in:\n{text}");
            }
        }
    }
    for entry in walkdir::WalkDir::new(&out) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{} holds a secret",
                    entry.path().display()
                );
            }
        }
    }
}
