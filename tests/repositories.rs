//! The release step's own destinations, each checked by the tools its users run: the wheel
//! and sdist uploaded to a real `pypiserver` on 127.0.0.1 and installed from it with pip;
//! the apt repository verified with gpg and installed from with apt-get in a clean Debian
//! root; the yum repository read by createrepo_c's own output, gpg and dnf.
//!
//! The sample is built once per test run (sdist, wheel, deb, rpm) into one folder the tests
//! share; each test writes its repositories into a folder of its own.

use crate::release_support::*;
use crate::util::*;
use gradient_release::folder::Folder;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The sample's sdist, wheel, deb and rpm, built once per test run (at a fixed source date).
fn sample_folder() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("repositories-sample");
        let _ = std::fs::remove_dir_all(&out);
        let output = run(gradient()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--to", "sdist,wheel,deb,rpm", "--no-smoke"])
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(&out));
        assert!(output.status.success(), "the sample builds");
        out
    })
}

/// A copy of the sample's folder (the repositories are written into it, as into a user's).
fn sample_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(sample_folder()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn wheel_and_sdist_upload_to_pypiserver_once_and_pip_installs_the_app_from_it() {
    let Some(venv) = pypiserver_venv() else {
        return;
    };
    use gradient_release::index::{plan, upload, Credentials, IndexError, IndexOptions};
    let dir = tempfile::tempdir().unwrap();
    let password = "correct-horse-battery-staple-7";
    let server = Pypiserver::start(&venv, dir.path(), "alice", password);
    let folder = Folder::open(sample_folder()).unwrap();
    let recorded = |file: &str| {
        folder
            .manifest
            .artifacts
            .iter()
            .find(|a| a.file == file)
            .unwrap()
            .sha256
            .clone()
    };
    let rt = runtime();
    let options = |user: &str, password: &str| IndexOptions {
        credentials: Some(Credentials::new(user, password)),
        ..IndexOptions::default()
    };

    // The dry run says what would go where, and sends nothing.
    let planned = plan(&folder, &server.url(), &options("alice", password)).unwrap();
    let planned: Vec<String> = planned.iter().map(|p| p.to_string()).collect();
    assert_eq!(planned.len(), 2, "{planned:#?}");
    assert!(planned[0].starts_with(&format!(
        "would upload sampleapp-1.2.3.tar.gz (sdist, sha256 {}) to {}",
        recorded("sampleapp-1.2.3.tar.gz"),
        server.url()
    )));
    assert!(planned[1].contains("sampleapp-1.2.3-py3-none-any.whl (bdist_wheel"));

    // A wrong password: the server's refusal, and no password anywhere in what is said.
    let wrong = "not-the-password-9183";
    let refused = rt
        .block_on(upload(&folder, &server.url(), &options("alice", wrong)))
        .unwrap_err();
    assert!(
        matches!(
            refused,
            IndexError::Refused {
                status: 401 | 403,
                ..
            }
        ),
        "{refused:?}"
    );
    let said = format!(
        "{refused}\n{refused:?}\n{}",
        gradient_core::Hint::hint(&refused).unwrap_or_default()
    );
    eprintln!("{said}");
    assert!(said.contains(&server.url()) && said.contains("sampleapp-1.2.3.tar.gz"));
    assert!(!said.contains(wrong) && !said.contains(password), "{said}");
    assert!(listing(&server.packages)
        .iter()
        .all(|f| !f.starts_with("sampleapp")));

    // A URL carrying credentials is refused before anything is sent, without them.
    let with_credentials = format!("http://alice:{password}@127.0.0.1:{}/", server.port);
    let refused = rt
        .block_on(upload(&folder, &with_credentials, &IndexOptions::default()))
        .unwrap_err();
    assert!(matches!(refused, IndexError::Url { .. }), "{refused:?}");
    assert!(!format!("{refused} {refused:?}").contains(password));

    // Sent, each acknowledged with the sha256 the index lists.
    let sent = rt
        .block_on(upload(&folder, &server.url(), &options("alice", password)))
        .unwrap();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    for record in &sent {
        assert!(record.sent, "{record:?}");
        assert_eq!(record.digest, format!("sha256:{}", recorded(&record.what)));
        assert_eq!(record.to, server.url());
        assert_eq!(
            sha256_file(&server.packages.join(&record.what)),
            recorded(&record.what),
            "the index holds the very bytes"
        );
    }

    // A rerun sends nothing, and says what the index holds.
    let again = rt
        .block_on(upload(&folder, &server.url(), &options("alice", password)))
        .unwrap();
    assert_eq!(again.len(), 2);
    for (record, first) in again.iter().zip(&sent) {
        assert!(!record.sent, "{record:?}");
        assert_eq!(record.digest, first.digest);
    }

    // A different file under a name the index holds: refused, the index never replaces one.
    let changed = sample_copy();
    let sdist = changed.path().join("sampleapp-1.2.3.tar.gz");
    let mut manifest = read_json(&changed.path().join("gradient-manifest.json"));
    let mut bytes = std::fs::read(&sdist).unwrap();
    // Bytes after the gzip member: the same metadata, another sha256.
    bytes.extend_from_slice(&[0; 512]);
    std::fs::write(&sdist, &bytes).unwrap();
    for artifact in manifest["artifacts"].as_array_mut().unwrap() {
        if artifact["file"] == "sampleapp-1.2.3.tar.gz" {
            artifact["sha256"] = sha256_file(&sdist).into();
            artifact["size"] = bytes.len().into();
        }
    }
    std::fs::write(
        changed.path().join("gradient-manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let changed_folder = Folder::open(changed.path()).unwrap();
    let conflict = rt
        .block_on(upload(
            &changed_folder,
            &server.url(),
            &options("alice", password),
        ))
        .unwrap_err();
    assert!(
        matches!(conflict, IndexError::Conflict { .. }),
        "{conflict:?}"
    );

    // pip installs the app from this index alone, into a venv of its own, and it runs.
    let target = dir.path().join("venv");
    assert!(run(Command::new(host_python())
        .args(["-m", "venv"])
        .arg(&target))
    .status
    .success());
    let installed = run(Command::new(target.join("bin/pip"))
        .args(["install", "--no-cache-dir", "--isolated", "--index-url"])
        .arg(format!("{}simple/", server.url()))
        .arg("sampleapp==1.2.3")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("PIP_FIND_LINKS"));
    assert!(installed.status.success(), "pip installs from the index");
    let ran = run(Command::new(target.join("bin/sampleapp")).args(["greet", "X"]));
    assert!(ran.status.success());
    assert_eq!(stdout(&ran).trim(), "Hello, X!");
}

/// A signing key made for the test with gpg in a GNUPGHOME of its own: the armoured secret
/// key (what `--key` takes) and the armoured public key, as files in `dir`.
/// The subjects of the checks that fail.
fn failing(checks: &[gradient_release::verify::Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.fails())
        .map(|c| format!("{} {}", c.subject, c.property))
        .collect()
}

/// A copy of `repo` (a repository folder) into `into/NAME`, for changing a byte of.
fn copy_repository(repo: &Path, into: &Path) -> PathBuf {
    let copy = into.join(repo.file_name().unwrap());
    assert!(run(Command::new("cp").arg("-a").arg(repo).arg(&copy))
        .status
        .success());
    copy
}

#[test]
fn the_apt_repository_is_signed_and_apt_installs_the_app_from_it_in_a_clean_debian_root() {
    if !require("gpg") {
        return;
    }
    use gradient_release::apt;
    use gradient_release::keys::{SigningKeys, VerifyingKeys};
    let dir = tempfile::tempdir().unwrap();
    let keys = make_keys(dir.path());
    let (secret, public) = (keys.pgp_secret(), keys.pgp_public());
    let keys = SigningKeys::load(&[secret]).unwrap();
    let out = sample_copy();
    let folder = Folder::open(out.path()).unwrap();

    let repository = apt::write(&folder, out.path(), keys.pgp.as_ref()).unwrap();
    let repo = out.path().join("apt");
    assert_eq!(repository.dir, repo);
    assert_eq!(
        repository.files,
        [
            "InRelease",
            "Packages",
            "Packages.gz",
            "Release",
            "Release.gpg",
            "sampleapp-archive-keyring.asc",
            "sampleapp_1.2.3-1_amd64.deb",
        ]
    );
    assert_eq!(
        repository.signed_by,
        keys.pgp.as_ref().map(|k| k.fingerprint())
    );
    assert!(repository.sent.iter().all(|s| s.sent));
    let packages = std::fs::read_to_string(repo.join("Packages")).unwrap();
    let deb = repo.join("sampleapp_1.2.3-1_amd64.deb");
    for line in [
        "Package: sampleapp\n".to_string(),
        "Version: 1.2.3-1\n".into(),
        "Filename: sampleapp_1.2.3-1_amd64.deb\n".into(),
        format!("SHA256: {}\n", sha256_file(&deb)),
        format!("Size: {}\n", std::fs::metadata(&deb).unwrap().len()),
    ] {
        assert!(packages.contains(&line), "{line} in:\n{packages}");
    }
    let release = std::fs::read_to_string(repo.join("Release")).unwrap();
    assert!(
        release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC\n"),
        "{release}"
    );
    assert!(release.contains(&format!(
        " {} {} Packages\n",
        sha256_file(&repo.join("Packages")),
        packages.len()
    )));

    // gpg, with only the published key, holds both signatures.
    let keyring = repo.join("sampleapp-archive-keyring.asc");
    assert!(gpg_verifies(
        dir.path(),
        &keyring,
        &[&repo.join("InRelease")]
    ));
    assert!(gpg_verifies(
        dir.path(),
        &keyring,
        &[&repo.join("Release.gpg"), &repo.join("Release")]
    ));
    assert!(gpg_verifies(
        dir.path(),
        &public,
        &[&repo.join("InRelease")]
    ));

    // gradient's own check, offline, with the published key: everything holds; a byte
    // changed in the deb, in Packages or in InRelease's text is named where it is.
    let public_keys = VerifyingKeys::load(std::slice::from_ref(&keyring)).unwrap();
    let checks = apt::verify(out.path(), &public_keys);
    assert!(failing(&checks).is_empty(), "{checks:#?}");
    let held: Vec<String> = checks
        .iter()
        .map(|c| format!("{} {}", c.subject, c.property))
        .collect();
    for expected in [
        "apt/InRelease signature",
        "apt/Release.gpg signature",
        "apt/Packages index",
        "apt/Packages.gz index",
        "apt/sampleapp_1.2.3-1_amd64.deb digest",
    ] {
        assert!(
            held.iter().any(|h| h == expected),
            "{expected} in {held:#?}"
        );
    }
    for (file, at, named) in [
        (
            "sampleapp_1.2.3-1_amd64.deb",
            -100,
            "apt/sampleapp_1.2.3-1_amd64.deb digest",
        ),
        ("Packages", 3, "apt/Packages index"),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let copy = copy_repository(&repo, scratch.path());
        flip_byte(&copy.join(file), at);
        assert_eq!(failing(&apt::verify(scratch.path(), &public_keys)), [named]);
    }
    let scratch = tempfile::tempdir().unwrap();
    let copy = copy_repository(&repo, scratch.path());
    let inrelease = std::fs::read_to_string(copy.join("InRelease")).unwrap();
    std::fs::write(
        copy.join("InRelease"),
        inrelease.replace("Label: sampleapp", "Label: sampleapq"),
    )
    .unwrap();
    assert_eq!(
        failing(&apt::verify(scratch.path(), &public_keys)),
        ["apt/InRelease signature"]
    );

    // A rerun of the same folder leaves the repository as it is.
    let again = apt::write(&folder, out.path(), keys.pgp.as_ref()).unwrap();
    assert!(again.sent.iter().all(|s| !s.sent));
    assert_eq!(
        std::fs::read(repo.join("InRelease")).unwrap(),
        std::fs::read(repository.dir.join("InRelease")).unwrap()
    );

    // Without a key: unsigned, and it says so.
    let unsigned_out = sample_copy();
    let unsigned = apt::write(
        &Folder::open(unsigned_out.path()).unwrap(),
        unsigned_out.path(),
        None,
    )
    .unwrap();
    assert_eq!(unsigned.signed_by, None);
    assert!(!unsigned
        .files
        .iter()
        .any(|f| f == "InRelease" || f.ends_with(".asc")));
    assert!(unsigned.notes.iter().any(|n| n.contains("unsigned")));

    if !can_chroot() {
        return;
    }
    let root = debian_root_with_repository(dir.path(), &repo, &keyring);
    let installed = chroot(&root, &["apt-get", "install", "-y", "sampleapp"]);
    assert!(
        installed.status.success(),
        "apt-get install from the repository"
    );
    let ran = chroot(&root, &["sampleapp", "greet", "X"]);
    assert!(ran.status.success());
    assert_eq!(stdout(&ran).trim(), "Hello, X!");

    // A Packages index changed after signing: apt refuses it (the hashes the signed
    // Release holds no longer match), so the signature covers the packages.
    let served = root.join("srv/repo");
    let mut tampered = std::fs::read_to_string(served.join("Packages")).unwrap();
    tampered = tampered.replace(
        "Package: sampleapp\n",
        "Package: sampleapp\nEssential: yes\n",
    );
    std::fs::write(served.join("Packages"), &tampered).unwrap();
    std::fs::write(served.join("Packages.gz"), {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(tampered.as_bytes()).unwrap();
        gz.finish().unwrap()
    })
    .unwrap();
    assert!(run(Command::new("sh")
        .arg("-c")
        .arg(format!("rm -rf {}/var/lib/apt/lists/*", root.display())))
    .status
    .success());
    let refused = chroot(&root, &["apt-get", "update"]);
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        !refused.status.success(),
        "apt-get update refuses a tampered index:\n{said}"
    );
    assert!(said.contains("Hash Sum mismatch"), "{said}");

    // The same repository signed by another key: apt, holding to the key `signed-by` names,
    // refuses it.
    let other_keys = tempfile::tempdir().unwrap();
    let other_secret = make_keys(other_keys.path()).pgp_secret();
    let other = SigningKeys::load(&[other_secret]).unwrap();
    let other_out = sample_copy();
    apt::write(
        &Folder::open(other_out.path()).unwrap(),
        other_out.path(),
        other.pgp.as_ref(),
    )
    .unwrap();
    assert_eq!(
        failing(&apt::verify(other_out.path(), &public_keys)),
        ["apt/InRelease signature", "apt/Release.gpg signature"],
        "gradient's check refuses another key's signatures too"
    );
    std::fs::remove_dir_all(&served).unwrap();
    assert!(run(Command::new("cp")
        .arg("-a")
        .arg(other_out.path().join("apt"))
        .arg(&served))
    .status
    .success());
    assert!(run(Command::new("sh")
        .arg("-c")
        .arg(format!("rm -rf {}/var/lib/apt/lists/*", root.display())))
    .status
    .success());
    let refused = chroot(&root, &["apt-get", "update"]);
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        said.contains("NO_PUBKEY") && said.contains("is not signed"),
        "apt-get update refuses a repository signed by another key:\n{said}"
    );
}

/// The package fields of a repodata file (primary, filelists or other), parsed with
/// Python's XML parser into JSON: each package's elements and attributes, but the file's
/// time stamp (createrepo_c takes the file's mtime, gradient the source date).
fn repodata_fields(file: &Path) -> serde_json::Value {
    let script = r#"
import gzip, json, sys, xml.etree.ElementTree as ET
def strip(tag): return tag.split('}')[-1]
def walk(e):
    attrs = {k: v for k, v in e.attrib.items() if not (strip(e.tag) == 'time' and k == 'file')}
    return [strip(e.tag), attrs, (e.text or '').strip(), [walk(c) for c in e]]
root = ET.fromstring(gzip.open(sys.argv[1]).read())
json.dump([walk(p) for p in root], sys.stdout)
"#;
    let output = run(Command::new(host_python()).args(["-c", script]).arg(file));
    assert!(output.status.success(), "{} parses as XML", file.display());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The file `repomd.xml` names for `kind`.
fn repomd_location(repo: &Path, kind: &str) -> PathBuf {
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    let at = repomd.find(&format!("<data type=\"{kind}\">")).unwrap();
    let href = &repomd[at..];
    let start = href.find("href=\"").unwrap() + 6;
    let end = start + href[start..].find('"').unwrap();
    repo.join(&href[start..end])
}

#[test]
fn the_yum_repository_matches_createrepo_c_is_signed_and_dnf_reads_it() {
    if !require("gpg") {
        return;
    }
    use gradient_release::keys::{SigningKeys, VerifyingKeys};
    use gradient_release::yum;
    let dir = tempfile::tempdir().unwrap();
    let secret = make_keys(dir.path()).pgp_secret();
    let keys = SigningKeys::load(&[secret]).unwrap();
    let out = sample_copy();
    let folder = Folder::open(out.path()).unwrap();

    let repository = yum::write(&folder, out.path(), keys.pgp.as_ref()).unwrap();
    let repo = out.path().join("yum");
    assert_eq!(
        repository.files,
        [
            "RPM-GPG-KEY-sampleapp",
            "repodata/filelists.xml.gz",
            "repodata/other.xml.gz",
            "repodata/primary.xml.gz",
            "repodata/repomd.xml",
            "repodata/repomd.xml.asc",
            "sampleapp-1.2.3-1.x86_64.rpm",
        ]
    );
    let key = repo.join("RPM-GPG-KEY-sampleapp");
    assert!(gpg_verifies(
        dir.path(),
        &key,
        &[
            &repo.join("repodata/repomd.xml.asc"),
            &repo.join("repodata/repomd.xml")
        ]
    ));
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    assert!(
        repomd.contains("<revision>1700000000</revision>"),
        "{repomd}"
    );
    for kind in ["primary", "filelists", "other"] {
        let file = repomd_location(&repo, kind);
        assert!(repomd.contains(&format!(
            "<checksum type=\"sha256\">{}</checksum>",
            sha256_file(&file)
        )));
    }

    // The rpm served carries its own header signature, by the same key (rpm checks it);
    // the folder's rpm stays as built.
    let served = repo.join("sampleapp-1.2.3-1.x86_64.rpm");
    assert_ne!(
        sha256_file(&served),
        sha256_file(&out.path().join("sampleapp-1.2.3-1.x86_64.rpm"))
    );
    assert_eq!(
        repository.sent[0].digest,
        format!("sha256:{}", sha256_file(&served))
    );
    if require("rpmkeys") {
        let db = dir.path().join("rpmdb");
        std::fs::create_dir_all(&db).unwrap();
        let rpmkeys = |args: &[&std::ffi::OsStr]| {
            run(Command::new("rpmkeys").arg("--dbpath").arg(&db).args(args))
        };
        assert!(rpmkeys(&["--import".as_ref(), key.as_os_str()])
            .status
            .success());
        let checked = rpmkeys(&["-K".as_ref(), served.as_os_str()]);
        assert!(checked.status.success());
        assert!(
            stdout(&checked).contains("signatures OK"),
            "{}",
            stdout(&checked)
        );
    }

    if require("createrepo_c") {
        // createrepo_c, on the same rpm, describes the package the same way.
        let theirs = dir.path().join("createrepo");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::copy(
            repo.join("sampleapp-1.2.3-1.x86_64.rpm"),
            theirs.join("sampleapp-1.2.3-1.x86_64.rpm"),
        )
        .unwrap();
        let made = run(Command::new("createrepo_c")
            .args(["--no-database", "--quiet"])
            .arg(&theirs));
        assert!(made.status.success());
        for kind in ["primary", "filelists", "other"] {
            assert_eq!(
                repodata_fields(&repomd_location(&repo, kind)),
                repodata_fields(&repomd_location(&theirs, kind)),
                "{kind}.xml as createrepo_c writes it"
            );
        }
    }

    // gradient's own check, offline, with the published key: everything holds; a byte
    // changed in the rpm, in primary.xml.gz or in repomd.xml is named where it is.
    let public_keys = VerifyingKeys::load(std::slice::from_ref(&key)).unwrap();
    let checks = yum::verify(out.path(), &public_keys);
    assert!(failing(&checks).is_empty(), "{checks:#?}");
    let held: Vec<String> = checks
        .iter()
        .map(|c| format!("{} {}", c.subject, c.property))
        .collect();
    for expected in [
        "yum/repodata/repomd.xml.asc signature",
        "yum/repodata/primary.xml.gz index",
        "yum/repodata/filelists.xml.gz index",
        "yum/repodata/other.xml.gz index",
        "yum/sampleapp-1.2.3-1.x86_64.rpm digest",
        "yum/sampleapp-1.2.3-1.x86_64.rpm signature",
    ] {
        assert!(
            held.iter().any(|h| h == expected),
            "{expected} in {held:#?}"
        );
    }
    for (file, at, named) in [
        (
            "sampleapp-1.2.3-1.x86_64.rpm",
            -100,
            &[
                "yum/sampleapp-1.2.3-1.x86_64.rpm digest",
                "yum/sampleapp-1.2.3-1.x86_64.rpm signature",
            ][..],
        ),
        (
            "repodata/primary.xml.gz",
            -3,
            &["yum/repodata/primary.xml.gz index"][..],
        ),
        (
            "repodata/repomd.xml",
            200,
            &["yum/repodata/repomd.xml.asc signature"][..],
        ),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let copy = copy_repository(&repo, scratch.path());
        flip_byte(&copy.join(file), at);
        assert_eq!(
            failing(&yum::verify(scratch.path(), &public_keys)),
            named,
            "{file} changed"
        );
    }

    // A rerun leaves it as it is.
    let again = yum::write(&folder, out.path(), keys.pgp.as_ref()).unwrap();
    assert!(again.sent.iter().all(|s| !s.sent));

    if !require("dnf") {
        return;
    }
    // dnf, checking repomd.xml's and the packages' signatures with the published key, finds
    // the package and downloads it through the repository's checksums.
    let dnf = |repo: &Path, args: &[&str]| {
        let root = tempfile::tempdir_in(dir.path()).unwrap();
        run(Command::new("dnf")
            .arg(format!("--installroot={}", root.path().display()))
            .arg(format!("--setopt=cachedir={}/cache", root.path().display()))
            .args([
                "--releasever=12",
                "--assumeyes",
                "--setopt=reposdir=/dev/null",
                "--setopt=gradient.gpgcheck=1",
                "--setopt=gradient.repo_gpgcheck=1",
            ])
            .arg(format!("--repofrompath=gradient,file://{}", repo.display()))
            .arg(format!(
                "--setopt=gradient.gpgkey=file://{}",
                repo.join("RPM-GPG-KEY-sampleapp").display()
            ))
            .args(["--repo=gradient"])
            .args(args))
    };
    let query = dnf(
        &repo,
        &["repoquery", "--qf", "%{name} %{evr} %{arch}", "sampleapp"],
    );
    assert!(query.status.success());
    assert!(
        stdout(&query).contains("sampleapp 1.2.3-1 x86_64"),
        "{}",
        stdout(&query)
    );
    let downloads = dir.path().join("downloads");
    let downloaded = dnf(
        &repo,
        &[
            "download",
            &format!("--destdir={}", downloads.display()),
            "sampleapp",
        ],
    );
    assert!(downloaded.status.success());
    assert_eq!(
        sha256_file(&downloads.join("sampleapp-1.2.3-1.x86_64.rpm")),
        sha256_file(&repo.join("sampleapp-1.2.3-1.x86_64.rpm"))
    );

    // An install into an empty root gets as far as the dependencies the repository lists:
    // there is no glibc to be had there (an rpm distribution's repository would have it).
    let install = dnf(&repo, &["install", "sampleapp"]);
    let said = format!("{}{}", stdout(&install), stderr(&install));
    assert!(!install.status.success());
    assert!(
        said.contains("nothing provides glibc >= 2.36 needed by sampleapp-1.2.3-1.x86_64"),
        "{said}"
    );

    // repomd.xml changed after signing: dnf refuses the repository.
    let tampered = dir.path().join("tampered");
    assert!(run(Command::new("cp").arg("-a").arg(&repo).arg(&tampered))
        .status
        .success());
    let repomd_path = tampered.join("repodata/repomd.xml");
    let text = std::fs::read_to_string(&repomd_path).unwrap();
    std::fs::write(&repomd_path, text.replace("<revision>", "<revision>1")).unwrap();
    let refused = dnf(&tampered, &["repoquery", "sampleapp"]);
    assert!(
        !stdout(&refused).contains("sampleapp"),
        "dnf refuses a repomd.xml whose signature does not hold"
    );
    assert!(stderr(&refused).contains("repomd.xml GPG signature verification error"));
}
