//! A yum/dnf repository in the output folder: `OUT/yum/` holding the folder's rpms and
//! `repodata/` — `primary.xml.gz` (what each package is, provides and requires),
//! `filelists.xml.gz`, `other.xml.gz` (changelogs), and `repomd.xml`, which names them with
//! their checksums and sizes; with an OpenPGP key, `repomd.xml.asc` (detached, what dnf's
//! `repo_gpgcheck` checks) and the public key beside (`RPM-GPG-KEY-NAME`).
//!
//! With a key, the rpms served are copies carrying their own header signature (the folder's
//! files stay as built, as their manifest and provenance describe them). Every field is
//! read from the served rpm's header with the `rpm` crate, in the forms createrepo_c writes
//! them; every time stamp is the folder's source date, so the same
//! folder gives the same repository, but for the signature. Staged beside and swapped in
//! whole.

use crate::folder::Folder;
use crate::keys::{KeyError, PgpSigner, VerifyingKeys};
use crate::repo::{held, plain_name, push, Repository, Stage};
use crate::verify::{Check, Outcome};
use crate::Sent;
use gradient_core::Tier;
use rpm::{Dependency, DependencyFlags, FileFlags, FileType, IndexSignatureTag, PackageMetadata};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How many changelog entries `other.xml` keeps per package (createrepo_c's default).
const CHANGELOG_LIMIT: usize = 10;

/// The repository's folder in the output folder.
pub const DIR: &str = "yum";

#[derive(Debug, thiserror::Error)]
pub enum YumError {
    #[error("the folder `{}` holds no rpm to put in a yum repository", dir.display())]
    Nothing { dir: PathBuf },
    #[error("`{}` is not an rpm gradient can index ({reason})", path.display())]
    Rpm { path: PathBuf, reason: String },
    #[error("cannot write the yum repository in `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sign the yum repository's repomd.xml")]
    Sign(#[source] KeyError),
    #[error("cannot sign the copy of `{}` the yum repository serves", path.display())]
    SignRpm {
        path: PathBuf,
        #[source]
        source: Box<crate::ReleaseError>,
    },
}

impl gradient_core::Hint for YumError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            YumError::Nothing { .. } => "build one first: `gradient build --to rpm`".into(),
            YumError::Rpm { .. } => "rebuild it: `gradient build --to rpm`".into(),
            YumError::Write { .. } => "check the output folder is writable, with room".into(),
            YumError::Sign(e) => return gradient_core::Hint::hint(e),
            YumError::SignRpm { source, .. } => return gradient_core::Hint::hint(source.as_ref()),
        })
    }
}

/// The name of the public key file beside the repository (dnf's `gpgkey=`).
pub fn key_name(project: &str) -> String {
    format!("RPM-GPG-KEY-{project}")
}

/// Text fit for XML: markup escaped, characters XML 1.0 forbids dropped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `[epoch:]version[-release]` as the three attributes repodata gives it.
fn evr_attributes(evr: &str) -> String {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => (e, rest),
        _ => ("0", evr),
    };
    match rest.rsplit_once('-') {
        Some((ver, rel)) => format!(
            " epoch=\"{}\" ver=\"{}\" rel=\"{}\"",
            esc(epoch),
            esc(ver),
            esc(rel)
        ),
        None => format!(" epoch=\"{}\" ver=\"{}\"", esc(epoch), esc(rest)),
    }
}

fn flags_name(flags: DependencyFlags) -> Option<&'static str> {
    let compare =
        flags & (DependencyFlags::LESS | DependencyFlags::GREATER | DependencyFlags::EQUAL);
    Some(match compare {
        f if f == DependencyFlags::EQUAL => "EQ",
        f if f == DependencyFlags::LESS => "LT",
        f if f == DependencyFlags::GREATER => "GT",
        f if f == DependencyFlags::LESS | DependencyFlags::EQUAL => "LE",
        f if f == DependencyFlags::GREATER | DependencyFlags::EQUAL => "GE",
        _ => return None,
    })
}

/// Whether a file is listed in primary.xml too (what resolvers look up most): createrepo_c's
/// rule.
fn in_primary(path: &str) -> bool {
    path.starts_with("/etc/") || path == "/usr/lib/sendmail" || path.contains("bin/")
}

/// One rpm, read.
struct Package {
    file: String,
    sha256: String,
    size: u64,
    metadata: PackageMetadata,
}

impl Package {
    fn text(&self, value: Result<&str, rpm::Error>) -> String {
        value.map(esc).unwrap_or_default()
    }

    fn nevra_attributes(&self) -> (String, String, String) {
        let h = &self.metadata;
        let name = self.text(h.get_name());
        let arch = self.text(h.get_arch());
        let version = format!(
            " epoch=\"{}\" ver=\"{}\" rel=\"{}\"",
            h.get_epoch().unwrap_or(0),
            self.text(h.get_version()),
            self.text(h.get_release())
        );
        (name, arch, version)
    }

    fn files(&self) -> Vec<(String, &'static str)> {
        self.metadata
            .get_file_entries()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let kind = if f.flags().contains(FileFlags::GHOST) {
                    " type=\"ghost\""
                } else if f.file_type() == FileType::Dir {
                    " type=\"dir\""
                } else {
                    ""
                };
                (f.path().to_string_lossy().into_owned(), kind)
            })
            .collect()
    }

    fn primary(&self, out: &mut String, file_time: u64) {
        let h = &self.metadata;
        let (name, arch, version) = self.nevra_attributes();
        let offsets = h.get_package_segment_offsets();
        let archive = h
            .signature
            .get_entry_data_as_u64(IndexSignatureTag::RPMSIGTAG_LONGARCHIVESIZE)
            .or_else(|_| {
                h.signature
                    .get_entry_data_as_u32(IndexSignatureTag::RPMSIGTAG_PAYLOADSIZE)
                    .map(u64::from)
            })
            .unwrap_or(0);
        let _ = write!(
            out,
            "<package type=\"rpm\">\n  <name>{name}</name>\n  <arch>{arch}</arch>\n  <version{version}/>\n  <checksum type=\"sha256\" pkgid=\"YES\">{}</checksum>\n  <summary>{}</summary>\n  <description>{}</description>\n  <packager>{}</packager>\n  <url>{}</url>\n  <time file=\"{file_time}\" build=\"{}\"/>\n  <size package=\"{}\" installed=\"{}\" archive=\"{archive}\"/>\n  <location href=\"{}\"/>\n  <format>\n    <rpm:license>{}</rpm:license>\n    <rpm:vendor>{}</rpm:vendor>\n    <rpm:group>{}</rpm:group>\n    <rpm:buildhost>{}</rpm:buildhost>\n    <rpm:sourcerpm>{}</rpm:sourcerpm>\n    <rpm:header-range start=\"{}\" end=\"{}\"/>\n",
            self.sha256,
            self.text(h.get_summary()),
            self.text(h.get_description()),
            self.text(h.get_packager()),
            self.text(h.get_url()),
            h.get_build_time().unwrap_or(0),
            self.size,
            h.get_installed_size().unwrap_or(0),
            esc(&self.file),
            self.text(h.get_license()),
            self.text(h.get_vendor()),
            self.text(h.get_group()),
            self.text(h.get_build_host()),
            self.text(h.get_source_rpm()),
            offsets.header,
            offsets.payload,
        );
        let files = self.files();
        let own_files: std::collections::BTreeSet<&str> =
            files.iter().map(|(p, _)| p.as_str()).collect();
        let sections: [(&str, Result<Vec<Dependency>, rpm::Error>); 8] = [
            ("provides", h.get_provides()),
            ("requires", h.get_requires()),
            ("conflicts", h.get_conflicts()),
            ("obsoletes", h.get_obsoletes()),
            ("suggests", h.get_suggests()),
            ("enhances", h.get_enhances()),
            ("recommends", h.get_recommends()),
            ("supplements", h.get_supplements()),
        ];
        for (section, dependencies) in sections {
            let mut seen = std::collections::BTreeSet::new();
            let mut entries = String::new();
            for d in dependencies.unwrap_or_default() {
                if section == "requires"
                    && (d.name.starts_with("rpmlib(")
                        || (own_files.contains(d.name.as_str()) && in_primary(&d.name)))
                {
                    continue;
                }
                if !seen.insert((d.name.clone(), d.flags.bits(), d.version.clone())) {
                    continue;
                }
                let _ = write!(entries, "      <rpm:entry name=\"{}\"", esc(&d.name));
                if let Some(flags) = flags_name(d.flags) {
                    let _ = write!(entries, " flags=\"{flags}\"{}", evr_attributes(&d.version));
                }
                let pre = DependencyFlags::PREREQ
                    | DependencyFlags::SCRIPT_PRE
                    | DependencyFlags::SCRIPT_POST;
                if section == "requires" && d.flags.intersects(pre) {
                    entries.push_str(" pre=\"1\"");
                }
                entries.push_str("/>\n");
            }
            if !entries.is_empty() {
                let _ = write!(out, "    <rpm:{section}>\n{entries}    </rpm:{section}>\n");
            }
        }
        for (path, kind) in &files {
            if in_primary(path) {
                let _ = writeln!(out, "    <file{kind}>{}</file>", esc(path));
            }
        }
        out.push_str("  </format>\n</package>\n");
    }

    fn filelists(&self, out: &mut String) {
        let (name, arch, version) = self.nevra_attributes();
        let _ = write!(
            out,
            "<package pkgid=\"{}\" name=\"{name}\" arch=\"{arch}\">\n  <version{version}/>\n",
            self.sha256
        );
        for (path, kind) in self.files() {
            let _ = writeln!(out, "  <file{kind}>{}</file>", esc(&path));
        }
        out.push_str("</package>\n");
    }

    fn other(&self, out: &mut String) {
        let (name, arch, version) = self.nevra_attributes();
        let _ = write!(
            out,
            "<package pkgid=\"{}\" name=\"{name}\" arch=\"{arch}\">\n  <version{version}/>\n",
            self.sha256
        );
        let mut entries = self.metadata.get_changelog_entries().unwrap_or_default();
        entries.truncate(CHANGELOG_LIMIT);
        // Oldest first, as createrepo_c writes them.
        for entry in entries.iter().rev() {
            let _ = writeln!(
                out,
                "  <changelog author=\"{}\" date=\"{}\">{}</changelog>",
                esc(&entry.name),
                entry.timestamp,
                esc(&entry.description)
            );
        }
        out.push_str("</package>\n");
    }
}

/// Write the yum repository of `folder`'s rpms into `out/yum` (`out` is usually the folder
/// itself), its `repomd.xml` signed with `signer` when there is one.
pub fn write(
    folder: &Folder,
    out: &Path,
    signer: Option<&PgpSigner>,
) -> Result<Repository, YumError> {
    let mut records: Vec<_> = folder.artifacts(Tier::Rpm).collect();
    if records.is_empty() {
        return Err(YumError::Nothing {
            dir: folder.dir.clone(),
        });
    }
    records.sort_by(|a, b| a.file.cmp(&b.file));
    let target = out.join(DIR);
    let write_error = |source| YumError::Write {
        path: target.clone(),
        source,
    };
    let date = folder.manifest.source_date.seconds;
    let stage = Stage::new(out).map_err(write_error)?;
    let mut packages = Vec::new();
    for record in &records {
        let path = folder.path(&record.file);
        let bad = |reason: String| YumError::Rpm {
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
        PackageMetadata::parse(&mut std::io::Cursor::new(&bytes))
            .and_then(|m| m.get_name().map(drop))
            .map_err(|e| bad(e.to_string()))?;
        // What the repository serves: with a key, a copy with the rpm's own header
        // signature (what dnf's gpgcheck checks); the folder's file stays as built.
        // (Signed into a folder of its own: the stage is locked while it is written.)
        let bytes = match signer {
            Some(signer) => {
                let scratch = tempfile::tempdir().map_err(write_error)?;
                let signed = scratch.path().join(&record.file);
                crate::rpmsign::sign_rpm(&path, &signed, signer, date).map_err(|source| {
                    YumError::SignRpm {
                        path: path.clone(),
                        source: Box::new(source),
                    }
                })?;
                std::fs::read(&signed).map_err(write_error)?
            }
            None => bytes,
        };
        stage.write(&record.file, &bytes).map_err(write_error)?;
        let metadata = PackageMetadata::parse(&mut std::io::Cursor::new(&bytes))
            .map_err(|e| bad(e.to_string()))?;
        packages.push(Package {
            file: record.file.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            metadata,
        });
    }
    let count = packages.len();
    let mut primary = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{count}\">\n");
    let mut filelists = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"{count}\">\n");
    let mut other = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"{count}\">\n");
    for package in &packages {
        package.primary(&mut primary, date);
        package.filelists(&mut filelists);
        package.other(&mut other);
    }
    primary.push_str("</metadata>\n");
    filelists.push_str("</filelists>\n");
    other.push_str("</otherdata>\n");

    let mut repomd = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n  <revision>{date}</revision>\n");
    for (kind, text) in [
        ("primary", &primary),
        ("filelists", &filelists),
        ("other", &other),
    ] {
        let gz = gradient_archive::gzip(text.as_bytes(), 9);
        let name = format!("repodata/{kind}.xml.gz");
        let _ = write!(
            repomd,
            "  <data type=\"{kind}\">\n    <checksum type=\"sha256\">{}</checksum>\n    <open-checksum type=\"sha256\">{}</open-checksum>\n    <location href=\"{name}\"/>\n    <timestamp>{date}</timestamp>\n    <size>{}</size>\n    <open-size>{}</open-size>\n  </data>\n",
            hex::encode(Sha256::digest(&gz)),
            hex::encode(Sha256::digest(text.as_bytes())),
            gz.len(),
            text.len()
        );
        stage.write(&name, &gz).map_err(write_error)?;
    }
    repomd.push_str("</repomd>\n");
    stage
        .write("repodata/repomd.xml", repomd.as_bytes())
        .map_err(write_error)?;

    let project = &folder.manifest.project.name;
    let key = key_name(project);
    let mut notes = Vec::new();
    if let Some(signer) = signer {
        let signature = signer.detached(repomd.as_bytes()).map_err(YumError::Sign)?;
        stage
            .write("repodata/repomd.xml.asc", signature.as_bytes())
            .map_err(write_error)?;
        stage
            .write(&key, signer.public_armored().as_bytes())
            .map_err(write_error)?;
        notes.push(format!(
            "use it with a .repo file: `baseurl=URI`, `gpgcheck=1`, `repo_gpgcheck=1`, `gpgkey=URI/{key}` (fingerprint {})",
            signer.fingerprint()
        ));
    } else {
        notes.push(
            "the yum repository is unsigned (no OpenPGP key was given): set `repo_gpgcheck=0` to use it, or give --key to sign it".into(),
        );
    }
    let files = stage.files();
    let written = stage
        .settle(&target, &["repodata/repomd.xml.asc"])
        .map_err(write_error)?;
    Ok(Repository {
        sent: packages
            .iter()
            .map(|p| Sent {
                what: p.file.clone(),
                to: target.display().to_string(),
                digest: format!("sha256:{}", p.sha256),
                sent: written,
            })
            .collect(),
        dir: target,
        files,
        signed_by: signer.map(|s| s.fingerprint()),
        notes,
    })
}

/// The text between the first `open` and the next `close` in `text`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

/// Check the yum repository in `out/yum` (nothing when there is none), offline:
/// `repomd.xml.asc` signed by one of `keys` over `repomd.xml`, each metadata file with the
/// sha256 and size `repomd.xml` gives it, each rpm with those `primary.xml` gives it and
/// its own header signature by one of `keys`. Each check names its file (`yum/…`).
pub fn verify(out: &Path, keys: &VerifyingKeys) -> Vec<Check> {
    let dir = out.join(DIR);
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut checks = Vec::new();
    let repomd_name = "repodata/repomd.xml";
    let repomd = match std::fs::read_to_string(dir.join(repomd_name)) {
        Ok(text) => text,
        Err(e) => {
            push(
                &mut checks,
                DIR,
                repomd_name,
                "index",
                Outcome::Fails(format!("cannot be read: {e}")),
            );
            return checks;
        }
    };
    let signature_name = "repodata/repomd.xml.asc";
    let outcome = match (
        std::fs::read_to_string(dir.join(signature_name)),
        keys.pgp.is_empty(),
    ) {
        (Err(_), true) => Outcome::Unchecked("the repository is unsigned".into()),
        (Err(_), false) => Outcome::Fails("the repository is unsigned (no repomd.xml.asc)".into()),
        (Ok(_), true) => Outcome::Unchecked("no OpenPGP public key was given".into()),
        (Ok(signature), false) if keys.pgp_detached_holds(repomd.as_bytes(), &signature) => {
            Outcome::Holds("OpenPGP signature by the given key, over repomd.xml".into())
        }
        (Ok(_), false) => {
            Outcome::Fails("the OpenPGP signature does not hold over repomd.xml".into())
        }
    };
    push(&mut checks, DIR, signature_name, "signature", outcome);

    let mut primary = None;
    for block in repomd.split("<data ").skip(1) {
        let kind = between(block, "type=\"", "\"")
            .unwrap_or_default()
            .to_string();
        let (Some(href), Some(sha256), Some(size)) = (
            between(block, "<location href=\"", "\""),
            between(block, "<checksum type=\"sha256\">", "</checksum>"),
            between(block, "<size>", "</size>").and_then(|s| s.trim().parse::<u64>().ok()),
        ) else {
            push(
                &mut checks,
                DIR,
                repomd_name,
                "index",
                Outcome::Fails(format!(
                    "its `{kind}` entry lacks a location, sha256 or size"
                )),
            );
            continue;
        };
        let inside = href.strip_prefix("repodata/").is_some_and(plain_name);
        let outcome = if inside {
            held(&dir.join(href), sha256.trim(), size, "repomd.xml")
        } else {
            Outcome::Fails("repomd.xml names a file outside repodata/".into())
        };
        if kind == "primary" && !matches!(outcome, Outcome::Fails(_)) {
            primary = Some(dir.join(href));
        }
        push(&mut checks, DIR, href, "index", outcome);
    }
    let Some(primary) = primary else {
        return checks;
    };
    let mut text = String::new();
    let read = std::fs::File::open(&primary).and_then(|file| {
        std::io::Read::read_to_string(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(file), 256 << 20),
            &mut text,
        )
    });
    if read.is_err() {
        push(
            &mut checks,
            DIR,
            "repodata/primary.xml.gz",
            "index",
            Outcome::Fails("it does not decompress".into()),
        );
        return checks;
    }
    for block in text.split("<package ").skip(1) {
        let (Some(href), Some(sha256), Some(size)) = (
            between(block, "<location href=\"", "\""),
            between(block, "pkgid=\"YES\">", "</checksum>"),
            between(block, "<size package=\"", "\"").and_then(|s| s.parse::<u64>().ok()),
        ) else {
            push(
                &mut checks,
                DIR,
                "repodata/primary.xml.gz",
                "index",
                Outcome::Fails("a package lacks a location, sha256 or size".into()),
            );
            continue;
        };
        if !plain_name(href) {
            push(
                &mut checks,
                DIR,
                "repodata/primary.xml.gz",
                "index",
                Outcome::Fails(format!(
                    "it names `{}`, outside the repository",
                    href.escape_debug()
                )),
            );
            continue;
        }
        let path = dir.join(href);
        push(
            &mut checks,
            DIR,
            href,
            "digest",
            held(&path, sha256.trim(), size, "primary.xml"),
        );
        let outcome = if keys.pgp.is_empty() {
            Outcome::Unchecked("no OpenPGP public key was given".into())
        } else {
            match crate::rpmsign::rpm_signature_holds(&path, &keys.pgp) {
                Ok(()) => Outcome::Holds("its header signature is by the given key".into()),
                Err(why) => Outcome::Fails(why),
            }
        };
        push(&mut checks, DIR, href, "signature", outcome);
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_flags_take_createrepo_cs_forms() {
        assert_eq!(evr_attributes("2.36"), " epoch=\"0\" ver=\"2.36\"");
        assert_eq!(
            evr_attributes("1:2.3-4.el9"),
            " epoch=\"1\" ver=\"2.3\" rel=\"4.el9\""
        );
        assert_eq!(
            flags_name(DependencyFlags::GREATER | DependencyFlags::EQUAL),
            Some("GE")
        );
        assert_eq!(flags_name(DependencyFlags::ANY), None);
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
        assert!(in_primary("/usr/bin/x") && in_primary("/etc/x.conf"));
        assert!(!in_primary("/usr/lib/x/lib.so"));
    }
}
