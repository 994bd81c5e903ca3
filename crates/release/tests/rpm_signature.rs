//! The rpm header signature made for a yum repository's copy, checked by rpm's own
//! `rpmkeys -K` with the public key imported, and refused by it after a flipped byte.

use gradient_release::keys::SigningKeys;
use gradient_release::rpmsign::{rpm_signature_holds, sign_rpm};
use std::path::Path;
use std::process::Command;

fn tool(name: &str) -> bool {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1"),
            "GRADIENT_REQUIRE_CHECKERS=1 needs `{name}`"
        );
        eprintln!("skipping: `{name}` is not installed");
    }
    present
}

/// An armoured OpenPGP key pair made by gpg in `dir`: (secret, public).
fn gpg_key(dir: &Path) -> (String, String) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let output = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    gpg(&[
        "--quick-gen-key",
        "Rpm Test <rpm@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    (
        gpg(&["--armor", "--export-secret-keys"]),
        gpg(&["--armor", "--export"]),
    )
}

#[test]
fn a_signed_copy_passes_rpmkeys_and_a_flipped_byte_does_not() {
    if !tool("gpg") || !tool("rpmkeys") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = gpg_key(dir.path());
    let secret_file = dir.path().join("key.asc");
    std::fs::write(&secret_file, &secret).unwrap();
    let public_file = dir.path().join("key.pub.asc");
    std::fs::write(&public_file, &public).unwrap();
    let keys = SigningKeys::load(&[secret_file]).unwrap();
    let pgp = keys.pgp.as_ref().unwrap();

    let unsigned = dir.path().join("demo-1.0-1.noarch.rpm");
    rpm::PackageBuilder::new("demo", "1.0", "MIT", "noarch", "a demo")
        .description("a demo package")
        .with_file_contents(
            "hello\n",
            rpm::FileOptions::new("/usr/share/demo/hello").mode(0o100644),
        )
        .unwrap()
        .build()
        .unwrap()
        .write_file(&unsigned)
        .unwrap();
    let signed = dir.path().join("signed.rpm");
    sign_rpm(&unsigned, &signed, pgp, 1_700_000_000).unwrap();
    // Same rpm, key and time: the same bytes.
    let again = dir.path().join("again.rpm");
    sign_rpm(&unsigned, &again, pgp, 1_700_000_000).unwrap();
    assert_eq!(
        std::fs::read(&signed).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert!(rpm_signature_holds(&signed, &keys.public().pgp).is_ok());
    assert!(rpm_signature_holds(&unsigned, &keys.public().pgp).is_err());

    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let rpmkeys = |args: &[&std::ffi::OsStr]| {
        Command::new("rpmkeys")
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(rpmkeys(&["--import".as_ref(), public_file.as_os_str()])
        .status
        .success());
    let checked = rpmkeys(&["-K".as_ref(), signed.as_os_str()]);
    let said = String::from_utf8_lossy(&checked.stdout).to_string();
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("signatures OK"), "{said}");

    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(&signed, bytes).unwrap();
    let checked = rpmkeys(&["-K".as_ref(), signed.as_os_str()]);
    assert!(!checked.status.success());
    assert!(rpm_signature_holds(&signed, &keys.public().pgp).is_err());
}
