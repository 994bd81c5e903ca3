//! An apt repository in the output folder: a flat repository (`deb [signed-by=KEY] URI ./`)
//! in `OUT/apt/` holding the folder's debs, their `Packages` index (plain and gzipped), a
//! `Release` file with the hashes of the indexes, and, with an OpenPGP key, `InRelease`
//! (cleartext-signed), `Release.gpg` (detached) and the public key users name in
//! `signed-by`.
//!
//! Each deb's stanza is its own `control` file, read from the `control.tar.*` member of the
//! deb's `ar` archive, with the fields apt checks a download against added (`Filename`,
//! `Size`, `MD5sum`, `SHA256`). The `Release` date is the folder's source date, so the same
//! folder gives the same repository, but for the signatures. The repository is staged
//! beside and swapped in whole.

use crate::folder::Folder;
use crate::keys::{KeyError, PgpSigner, VerifyingKeys};
use crate::repo::{held, plain_name, push, Repository, Stage};
use crate::verify::{Check, Outcome};
use crate::Sent;
use gradient_core::Tier;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The fields a stanza in `Packages` gets from the repository, never from the deb.
const REPOSITORY_FIELDS: &[&str] = &[
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Description-md5",
];

/// The repository's folder in the output folder.
pub const DIR: &str = "apt";

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("the folder `{}` holds no deb to put in an apt repository", dir.display())]
    Nothing { dir: PathBuf },
    #[error("`{}` is not a deb gradient can index ({reason})", path.display())]
    Deb { path: PathBuf, reason: String },
    #[error("cannot write the apt repository in `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sign the apt repository's Release")]
    Sign(#[source] KeyError),
}

impl gradient_core::Hint for AptError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            AptError::Nothing { .. } => "build one first: `gradient build --to deb`".into(),
            AptError::Deb { .. } => "rebuild it: `gradient build --to deb`".into(),
            AptError::Write { .. } => "check the output folder is writable, with room".into(),
            AptError::Sign(e) => return gradient_core::Hint::hint(e),
        })
    }
}

/// The name of the public key file beside the repository, for `signed-by`.
pub fn keyring_name(project: &str) -> String {
    format!("{project}-archive-keyring.asc")
}

/// Write the apt repository of `folder`'s debs into `out/apt` (`out` is usually the folder
/// itself), signed with `signer` when there is one.
pub fn write(
    folder: &Folder,
    out: &Path,
    signer: Option<&PgpSigner>,
) -> Result<Repository, AptError> {
    let debs: Vec<_> = folder.artifacts(Tier::Deb).collect();
    if debs.is_empty() {
        return Err(AptError::Nothing {
            dir: folder.dir.clone(),
        });
    }
    let target = out.join(DIR);
    let write_error = |source| AptError::Write {
        path: target.clone(),
        source,
    };
    let stage = Stage::new(out).map_err(write_error)?;
    let mut stanzas = Vec::new();
    let mut architectures = std::collections::BTreeSet::new();
    let mut records: Vec<_> = debs.iter().collect();
    records.sort_by(|a, b| a.file.cmp(&b.file));
    for record in &records {
        let path = folder.path(&record.file);
        let bad = |reason: String| AptError::Deb {
            path: path.clone(),
            reason,
        };
        if !plain_name(&record.file) {
            return Err(bad("its name is not a plain file name".into()));
        }
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != record.sha256 {
            return Err(bad("it changed since its folder was checked".into()));
        }
        let control = deb_control(&bytes).map_err(bad)?;
        let fields = parse_stanza(&control).map_err(bad)?;
        if let Some((_, arch)) = fields.iter().find(|(k, _)| k == "Architecture") {
            architectures.insert(arch.clone());
        }
        stanzas.push(stanza(
            &fields,
            &[
                ("Filename", record.file.clone()),
                ("Size", bytes.len().to_string()),
                ("MD5sum", hex::encode(Md5::digest(&bytes))),
                ("SHA256", sha256),
            ],
        ));
        stage.write(&record.file, &bytes).map_err(write_error)?;
    }
    let packages = stanzas.join("\n");
    let packages_gz = gradient_archive::gzip(packages.as_bytes(), 9);
    let project = &folder.manifest.project.name;
    let release = release_text(
        project,
        folder.manifest.source_date.seconds,
        &architectures.into_iter().collect::<Vec<_>>(),
        &[
            ("Packages", packages.as_bytes()),
            ("Packages.gz", &packages_gz),
        ],
    );
    stage
        .write("Packages", packages.as_bytes())
        .map_err(write_error)?;
    stage
        .write("Packages.gz", &packages_gz)
        .map_err(write_error)?;
    stage
        .write("Release", release.as_bytes())
        .map_err(write_error)?;
    let mut notes = Vec::new();
    let keyring = keyring_name(project);
    if let Some(signer) = signer {
        let inrelease = signer.clearsign(&release).map_err(AptError::Sign)?;
        let detached = signer
            .detached(release.as_bytes())
            .map_err(AptError::Sign)?;
        stage
            .write("InRelease", inrelease.as_bytes())
            .map_err(write_error)?;
        stage
            .write("Release.gpg", detached.as_bytes())
            .map_err(write_error)?;
        stage
            .write(&keyring, signer.public_armored().as_bytes())
            .map_err(write_error)?;
        notes.push(format!(
            "use it with `deb [signed-by=/etc/apt/keyrings/{keyring}] URI ./`, the key copied from {keyring} (fingerprint {})",
            signer.fingerprint()
        ));
    } else {
        notes.push(
            "the apt repository is unsigned (no OpenPGP key was given): apt refuses it unless the source says `[trusted=yes]`; give --key to sign it".into(),
        );
    }
    let files = stage.files();
    let written = stage
        .settle(&target, &["InRelease", "Release.gpg"])
        .map_err(write_error)?;
    Ok(Repository {
        sent: records
            .iter()
            .map(|r| Sent {
                what: r.file.clone(),
                to: target.display().to_string(),
                digest: format!("sha256:{}", r.sha256),
                sent: written,
            })
            .collect(),
        dir: target,
        files,
        signed_by: signer.map(|s| s.fingerprint()),
        notes,
    })
}

/// Check the apt repository in `out/apt` (nothing when there is none), offline: `InRelease`
/// and `Release.gpg` signed by one of `keys` over `Release`, each index with the size and
/// sha256 `Release` gives it, each deb with those its stanza in `Packages` gives it. Each
/// check names its file (`apt/Packages`), so a changed byte is found where it is.
pub fn verify(out: &Path, keys: &VerifyingKeys) -> Vec<Check> {
    let dir = out.join(DIR);
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut checks = Vec::new();
    let release = match std::fs::read_to_string(dir.join("Release")) {
        Ok(text) => text,
        Err(e) => {
            push(
                &mut checks,
                DIR,
                "Release",
                "index",
                Outcome::Fails(format!("cannot be read: {e}")),
            );
            return checks;
        }
    };
    // The signatures.
    let inrelease = std::fs::read_to_string(dir.join("InRelease")).ok();
    let detached = std::fs::read_to_string(dir.join("Release.gpg")).ok();
    if inrelease.is_none() && detached.is_none() {
        let outcome = if keys.pgp.is_empty() {
            Outcome::Unchecked("the repository is unsigned".into())
        } else {
            Outcome::Fails("the repository is unsigned (no InRelease, no Release.gpg)".into())
        };
        push(&mut checks, DIR, "Release", "signature", outcome);
    }
    if let Some(text) = inrelease {
        let outcome = if keys.pgp.is_empty() {
            Outcome::Unchecked("no OpenPGP public key was given".into())
        } else {
            match keys.pgp_cleartext_text(&text) {
                Some(signed) if same_lines(&signed, &release) => {
                    Outcome::Holds("OpenPGP signature by the given key, over Release".into())
                }
                Some(_) => Outcome::Fails("it is signed, but says other than Release".into()),
                None => Outcome::Fails("the OpenPGP signature does not hold".into()),
            }
        };
        push(&mut checks, DIR, "InRelease", "signature", outcome);
    }
    if let Some(signature) = detached {
        let outcome = if keys.pgp.is_empty() {
            Outcome::Unchecked("no OpenPGP public key was given".into())
        } else if keys.pgp_detached_holds(release.as_bytes(), &signature) {
            Outcome::Holds("OpenPGP signature by the given key, over Release".into())
        } else {
            Outcome::Fails("the OpenPGP signature does not hold over Release".into())
        };
        push(&mut checks, DIR, "Release.gpg", "signature", outcome);
    }
    // The indexes, against Release.
    let listed = release_sha256(&release);
    if listed.is_empty() {
        push(
            &mut checks,
            DIR,
            "Release",
            "index",
            Outcome::Fails("it lists no SHA256 hashes".into()),
        );
    }
    for (name, (sha256, size)) in &listed {
        let outcome = if !plain_name(name) {
            Outcome::Fails("Release names a file outside the repository".into())
        } else {
            held(&dir.join(name), sha256, *size, "Release")
        };
        push(&mut checks, DIR, name, "index", outcome);
    }
    // The packages, against Packages (when Packages itself holds).
    let packages_hold = listed.contains_key("Packages")
        && checks
            .iter()
            .any(|c| c.subject == format!("{DIR}/Packages") && !c.fails());
    if packages_hold {
        let packages = std::fs::read_to_string(dir.join("Packages")).unwrap_or_default();
        for stanza in packages.split("\n\n").filter(|s| !s.trim().is_empty()) {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    l.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                })
            };
            let (Some(file), Some(sha256), Some(size)) =
                (field("Filename"), field("SHA256"), field("Size"))
            else {
                push(
                    &mut checks,
                    DIR,
                    "Packages",
                    "index",
                    Outcome::Fails("a stanza lacks Filename, Size or SHA256".into()),
                );
                continue;
            };
            let outcome = match size.parse::<u64>() {
                Ok(size) if plain_name(&file) => held(&dir.join(&file), &sha256, size, "Packages"),
                _ => Outcome::Fails("Packages gives it an unusable name or size".into()),
            };
            push(&mut checks, DIR, &file, "digest", outcome);
        }
    }
    checks
}

/// The same text, line ends and trailing spaces aside (a cleartext signature's text is
/// given back with them normalised).
fn same_lines(a: &str, b: &str) -> bool {
    let lines = |t: &str| -> Vec<String> {
        t.trim_end()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    };
    lines(a) == lines(b)
}

/// `Release`'s SHA256 section: file → (sha256, size).
fn release_sha256(release: &str) -> std::collections::BTreeMap<String, (String, u64)> {
    let mut listed = std::collections::BTreeMap::new();
    let mut in_section = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_section = line.trim_end() == "SHA256:";
            continue;
        }
        if in_section {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [sha256, size, name] = parts.as_slice() {
                if let Ok(size) = size.parse() {
                    listed.insert(name.to_string(), (sha256.to_ascii_lowercase(), size));
                }
            }
        }
    }
    listed
}

/// The `Release` file: what the repository is, its date, and the hashes of its indexes.
fn release_text(
    project: &str,
    date: u64,
    architectures: &[String],
    indexes: &[(&str, &[u8])],
) -> String {
    let mut text = format!(
        "Origin: {project}\nLabel: {project}\nDate: {}\nArchitectures: {}\nDescription: {project}, as gradient released it\n",
        gradient_archive::rfc2822(date).replace("+0000", "UTC"),
        architectures.join(" ")
    );
    let width = indexes
        .iter()
        .map(|(_, b)| b.len().to_string().len())
        .max()
        .unwrap_or(1);
    text.push_str("MD5Sum:\n");
    for (name, bytes) in indexes {
        text.push_str(&format!(
            " {} {:>width$} {name}\n",
            hex::encode(Md5::digest(bytes)),
            bytes.len()
        ));
    }
    text.push_str("SHA256:\n");
    for (name, bytes) in indexes {
        text.push_str(&format!(
            " {} {:>width$} {name}\n",
            hex::encode(Sha256::digest(bytes)),
            bytes.len()
        ));
    }
    text
}

/// The text of `control` in a deb's `control.tar.gz` (or `.tar`).
fn deb_control(deb: &[u8]) -> Result<String, String> {
    let members = ar_members(deb)?;
    if members.first().map(|(name, _)| name.as_str()) != Some("debian-binary") {
        return Err("its first member is not debian-binary".into());
    }
    let (name, data) = members
        .iter()
        .find(|(name, _)| name.starts_with("control.tar"))
        .ok_or("it has no control.tar member")?;
    let tar: Box<dyn Read> = match name.as_str() {
        "control.tar.gz" => Box::new(flate2::read::GzDecoder::new(*data)),
        "control.tar" => Box::new(*data),
        other => {
            return Err(format!(
                "its `{other}` is compressed in a way gradient does not read (gzip only)"
            ))
        }
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path == Path::new("./control") || path == Path::new("control") {
            let mut text = String::new();
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_string(&mut text)
                .map_err(|e| format!("its control file: {e}"))?;
            return Ok(text);
        }
    }
    Err("its control.tar has no control file".into())
}

/// The members of an `ar` archive, as (name, data).
fn ar_members(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, String> {
    let rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or("it is not an ar archive")?;
    let mut members = Vec::new();
    let mut at = 0;
    while at + 60 <= rest.len() {
        let header = &rest[at..at + 60];
        if &header[58..60] != b"`\n" {
            return Err("an ar member header is damaged".into());
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| "an ar member size is not a number")?;
        let start = at + 60;
        let end = start
            .checked_add(size)
            .filter(|end| *end <= rest.len())
            .ok_or("an ar member runs past the end")?;
        members.push((name, &rest[start..end]));
        at = end + (size % 2);
    }
    Ok(members)
}

/// A control stanza's fields, in order, values with their continuation lines.
fn parse_stanza(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // one stanza: anything after a blank line is not this package's
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields
                .last_mut()
                .ok_or("its control file opens with a continuation line")?;
            value.push('\n');
            value.push_str(line);
        } else {
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| format!("its control line `{line}` has no field name"))?;
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) || key.starts_with('#')
            {
                return Err(format!("its control field name `{key}` is not one"));
            }
            fields.push((key.to_string(), value.trim().to_string()));
        }
    }
    for required in ["Package", "Version", "Architecture"] {
        if !fields.iter().any(|(k, _)| k == required) {
            return Err(format!("its control file has no {required}"));
        }
    }
    Ok(fields)
}

/// The stanza for `Packages`: the deb's fields, the repository's own put in before the
/// description (and any the deb carried of those left out).
fn stanza(fields: &[(String, String)], ours: &[(&str, String)]) -> String {
    let mut text = String::new();
    let put_ours = |text: &mut String| {
        for (key, value) in ours {
            text.push_str(&format!("{key}: {value}\n"));
        }
    };
    let mut done = false;
    for (key, value) in fields {
        if REPOSITORY_FIELDS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(key))
        {
            continue;
        }
        if key == "Description" && !done {
            put_ours(&mut text);
            done = true;
        }
        text.push_str(&format!("{key}: {value}\n"));
    }
    if !done {
        put_ours(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend_from_slice(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    100644,
                    data.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn control_tar_gz(control: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        gradient_archive::gzip(&builder.into_inner().unwrap(), 6)
    }

    #[test]
    fn the_control_stanza_is_read_from_the_deb_and_gets_the_repository_fields() {
        let control = "Package: demo\nVersion: 1.0-1\nArchitecture: amd64\nMD5sum: forged\nDescription: a demo\n it does things\n";
        let deb = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &control_tar_gz(control)),
            ("data.tar.gz", b"x"),
        ]);
        let text = deb_control(&deb).unwrap();
        let fields = parse_stanza(&text).unwrap();
        let stanza = stanza(
            &fields,
            &[("Filename", "demo.deb".into()), ("MD5sum", "ours".into())],
        );
        assert_eq!(
            stanza,
            "Package: demo\nVersion: 1.0-1\nArchitecture: amd64\nFilename: demo.deb\nMD5sum: ours\nDescription: a demo\n it does things\n"
        );
    }

    #[test]
    fn damaged_debs_and_control_files_are_refused() {
        assert!(deb_control(b"not a deb").is_err());
        assert!(deb_control(&ar(&[("debian-binary", b"2.0\n")])).is_err());
        let zst = ar(&[("debian-binary", b"2.0\n"), ("control.tar.zst", b"x")]);
        assert!(deb_control(&zst).unwrap_err().contains("gzip only"));
        let mut cut = ar(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &[1; 100])]);
        cut.truncate(cut.len() - 10);
        assert!(deb_control(&cut).unwrap_err().contains("past the end"));
        assert!(parse_stanza("Package: x\nVersion: 1\n").is_err());
        assert!(parse_stanza(" continuation first\n").is_err());
    }

    #[test]
    fn release_lists_each_index_with_its_size_and_hashes() {
        let text = release_text(
            "demo",
            1_700_000_000,
            &["amd64".into()],
            &[("Packages", b"abc")],
        );
        assert!(text.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC\n"));
        assert!(text.contains(
            "SHA256:\n ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3 Packages\n"
        ));
        assert!(text.contains("MD5Sum:\n 900150983cd24fb0d6963f7d28e17f72 3 Packages\n"));
    }
}
