//! A `.deb` written natively: an `ar` archive of `debian-binary`, `control.tar.gz`
//! (control, md5sums, maintainer scripts) and `data.tar.gz` (the files), every member and
//! entry at the source date and owned by root, so the same spec gives the same bytes.
//!
//! Most of a bundled package is the runtime, which changes far less often than the app. Its
//! files open the data tarball and are compressed once per runtime and package name: the
//! deflate stream of that part ends with a sync flush, is kept in the cache, and the rest of
//! the tarball is compressed after it into the same gzip member (see [`DataPart`]).

use crate::spec::{Dependency, PackageSpec};
use crate::{io, OsPkgError};
use flate2::{Compression, GzBuilder};
use gradient_archive::{gzip_trailer, End, GZIP_HEADER};
use gradient_archive::{write_tar, Entry, EntryKind};
use gradient_core::Platform;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped whenever the bytes of a cached part would change for the same key.
const PART_FORMAT: u32 = 2;
/// gzip's level for the data and control tarballs (dpkg-deb's default).
const LEVEL: u32 = 6;

/// Debian's name for the architecture of `platform` (`arm64`; the machine's own for a
/// host gradient has no name for), or `all` when the package holds no compiled code.
pub fn architecture(native: bool, platform: Option<Platform>) -> &'static str {
    if !native {
        return "all";
    }
    if let Some(platform) = platform {
        return platform.deb_arch();
    }
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        other => other,
    }
}

/// `NAME_VERSION-REVISION_ARCH.deb` (the epoch is not part of file names).
pub fn file_name(spec: &PackageSpec) -> String {
    package_file_name(
        &spec.name,
        &spec.version.upstream,
        &spec.revision,
        spec.native,
        spec.platform,
    )
}

/// [`file_name`] from its parts, as the plan names the package before it is built.
pub fn package_file_name(
    name: &str,
    upstream: &str,
    revision: &str,
    native: bool,
    platform: Option<Platform>,
) -> String {
    format!(
        "{name}_{upstream}-{revision}_{}.deb",
        architecture(native, platform)
    )
}

/// Write the package to `path`; the runtime's part of the data is kept in `cache`.
pub fn write_deb(
    spec: &PackageSpec,
    mtime: u64,
    path: &Path,
    cache: &Path,
) -> Result<(), OsPkgError> {
    let mut files = spec.files.clone();
    files.push(changelog(spec, mtime)?);
    files.push(lintian_overrides(spec));
    for dir_path in ["usr/share/lintian", "usr/share/lintian/overrides"] {
        if !files.iter().any(|e| e.path == dir_path) {
            files.push(dir(dir_path));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    // The runtime's files first (their parents included), then the rest, each sorted.
    let (runtime_files, rest): (Vec<&Entry>, Vec<&Entry>) = files.iter().partition(|e| {
        spec.runtime_part
            .as_ref()
            .is_some_and(|p| p.paths.contains(&e.path))
    });
    let part = match &spec.runtime_part {
        Some(runtime_part) => {
            DataPart::cached_or_made(cache, &runtime_part.key, mtime, &runtime_files)?
        }
        None => DataPart::make(&[dir(".")], mtime)?,
    };
    let data = part.finish(&rest, mtime)?;

    let mut control_entries = vec![
        dir("."),
        text("./control", &control(spec, &files), 0o644),
        text(
            "./md5sums",
            &format!("{}{}", part.md5sums, md5sums(&rest)),
            0o644,
        ),
    ];
    for (name, script) in [
        ("postinst", &spec.scripts.postinst),
        ("postrm", &spec.scripts.postrm),
        ("preinst", &spec.scripts.preinst),
        ("prerm", &spec.scripts.prerm),
    ] {
        if let Some(script) = script {
            control_entries.push(text(&format!("./{name}"), script, 0o755));
        }
    }
    let control = gzip_tar(&control_entries, mtime)?;

    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in [
        ("debian-binary", b"2.0\n".as_slice()),
        ("control.tar.gz", &control),
        ("data.tar.gz", &data),
    ] {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            mtime,
            0,
            0,
            "100644",
            data.len()
        );
        debug_assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    std::fs::write(path, out).map_err(io("write", path))
}

/// The `control` file.
fn control(spec: &PackageSpec, files: &[Entry]) -> String {
    // Installed-Size: KiB, each file rounded up, each folder one (as dpkg-gencontrol counts).
    let installed_kib: u64 = files
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File(data) => (data.len() as u64).div_ceil(1024),
            _ => 1,
        })
        .sum();
    let mut control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {}\n",
        spec.name,
        spec.full_version(),
        architecture(spec.native, spec.platform)
    );
    if let Some(maintainer) = &spec.maintainer {
        control.push_str(&format!("Maintainer: {maintainer}\n"));
    }
    control.push_str(&format!("Installed-Size: {installed_kib}\n"));
    if !spec.depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", depends(&spec.depends)));
    }
    control.push_str("Section: misc\nPriority: optional\n");
    if let Some(homepage) = &spec.homepage {
        control.push_str(&format!("Homepage: {homepage}\n"));
    }
    control.push_str(&format!(
        "Description: {}\n{}",
        synopsis(&spec.summary),
        extended(&spec.description)
    ));
    control
}

fn depends(list: &[Dependency]) -> String {
    list.iter()
        .map(|d| match &d.constraint {
            Some((op, version)) => format!("{} ({op} {version})", d.name),
            None => d.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line, without a final full stop or a leading article (as Debian's policy on
/// synopses asks), at most 80 characters.
fn synopsis(summary: &str) -> String {
    let mut line = summary
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    for article in ["The ", "A ", "An ", "the ", "a ", "an "] {
        if let Some(rest) = line.strip_prefix(article) {
            line = rest;
            break;
        }
    }
    line.chars().take(80).collect()
}

/// The extended description: each line indented by one space, wrapped near 72 columns.
fn extended(text: &str) -> String {
    crate::spec::wrap(text, 72)
        .iter()
        .map(|line| format!(" {line}\n"))
        .collect()
}

fn md5sums(files: &[&Entry]) -> String {
    files
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File(data) => {
                Some(format!("{}  {}\n", hex::encode(Md5::digest(data)), e.path))
            }
            _ => None,
        })
        .collect()
}

/// `changelog.Debian.gz`, one entry for this build.
fn changelog(spec: &PackageSpec, mtime: u64) -> Result<Entry, OsPkgError> {
    let maintainer = spec
        .maintainer
        .as_deref()
        .unwrap_or("unknown <unknown@invalid>");
    let text = format!(
        "{} ({}) unstable; urgency=medium\n\n  * Packaged by gradient from {} {}.\n\n -- {maintainer}  {}\n",
        spec.name,
        spec.full_version(),
        spec.name,
        spec.project_version,
        gradient_archive::rfc2822(mtime)
    );
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(text.as_bytes())
        .map_err(io("compress", Path::new("changelog.Debian.gz")))?;
    let data = gz
        .finish()
        .map_err(io("compress", Path::new("changelog.Debian.gz")))?;
    Ok(Entry {
        path: format!("usr/share/doc/{}/changelog.Debian.gz", spec.name),
        kind: EntryKind::File(data),
        mode: 0o644,
    })
}

/// The lintian tags a bundled package draws by design, each with the reason; see
/// docs/tiers.md. A package on the system's python3 needs none.
fn lintian_overrides(spec: &PackageSpec) -> Entry {
    let name = &spec.name;
    let mut text = String::new();
    if spec
        .files
        .iter()
        .any(|e| e.path == format!("usr/lib/{name}/lib"))
    {
        text.push_str(&format!(
            "# The package carries its own CPython and the libraries it links against, so\n\
             # that it needs nothing of the system but its C library.\n\
             {name}: embedded-library *[usr/lib/{name}/*]\n\
             {name}: shared-library-lacks-prerequisites [usr/lib/{name}/*]\n\
             {name}: library-not-linked-against-libc [usr/lib/{name}/*]\n\
             {name}: shared-library-lacks-version [usr/lib/{name}/*]\n\
             {name}: hardening-no-fortify-functions [usr/lib/{name}/*]\n\
             {name}: hardening-no-bindnow [usr/lib/{name}/*]\n\
             # Console scripts run the bundled interpreter, in isolated mode.\n\
             {name}: unusual-interpreter /usr/lib/{name}/* [usr/bin/*]\n"
        ));
    }
    text.push_str(&format!(
        "# Console scripts of a Python application come without manual pages.\n\
         {name}: no-manual-page [usr/bin/*]\n"
    ));
    Entry {
        path: format!("usr/share/lintian/overrides/{name}"),
        kind: EntryKind::File(text.into_bytes()),
        mode: 0o644,
    }
}

/// The opening of `data.tar.gz`: the tar entries of the runtime's files, deflated and ended
/// with a sync flush so that more deflate blocks can follow in the same gzip member.
#[derive(Serialize, Deserialize)]
struct DataPart {
    /// CRC-32 and length of the uncompressed tar entries, which the gzip trailer covers.
    crc: u32,
    length: u64,
    /// The md5sums lines of its files.
    md5sums: String,
    /// CRC-32 of `deflated`, to tell a damaged cache entry.
    deflated_crc: u32,
    #[serde(skip)]
    deflated: Vec<u8>,
}

impl DataPart {
    /// The part for `entries` (runtime files, without `.`), from the cache when an intact
    /// copy is there; made and kept there otherwise.
    fn cached_or_made(
        cache: &Path,
        key: &str,
        mtime: u64,
        entries: &[&Entry],
    ) -> Result<DataPart, OsPkgError> {
        let folder = cache.join("ospkg").join("deb-data");
        // Named whole: a key may hold a dot, which `with_extension` would cut at.
        let stem = format!("{key}-{mtime}-v{PART_FORMAT}");
        let (meta_path, data_path) = (
            folder.join(format!("{stem}.json")),
            folder.join(format!("{stem}.deflate")),
        );
        match DataPart::read(&meta_path, &data_path) {
            Some(Ok(part)) => return Ok(part),
            Some(Err(why)) => tracing::warn!(
                "the cached runtime part `{}` is damaged ({why}); making it again",
                data_path.display()
            ),
            None => {}
        }
        let with_root: Vec<Entry> = std::iter::once(dir("."))
            .chain(entries.iter().map(|e| (*e).clone()))
            .collect();
        let mut part = DataPart::make(&with_root, mtime)?;
        part.md5sums = md5sums(entries);
        // The data first, the description last: a description names a complete part.
        std::fs::create_dir_all(&folder).map_err(io("create", &folder))?;
        let json = serde_json::to_vec(&part).expect("serialises");
        write_beside(&data_path, &part.deflated)?;
        write_beside(&meta_path, &json)?;
        Ok(part)
    }

    /// `None` when nothing is cached; `Some(Err)` when what is cached is damaged.
    fn read(meta_path: &Path, data_path: &Path) -> Option<Result<DataPart, String>> {
        let meta = std::fs::read(meta_path).ok()?;
        let mut part: DataPart = match serde_json::from_slice(&meta) {
            Ok(part) => part,
            Err(e) => return Some(Err(format!("its description does not parse: {e}"))),
        };
        part.deflated = match std::fs::read(data_path) {
            Ok(data) => data,
            Err(e) => return Some(Err(e.to_string())),
        };
        if crc32fast::hash(&part.deflated) != part.deflated_crc {
            return Some(Err("its checksum does not match".into()));
        }
        Some(Ok(part))
    }

    /// Tar `entries` (no end-of-archive blocks) and deflate them, sync-flushed.
    fn make(entries: &[Entry], mtime: u64) -> Result<DataPart, OsPkgError> {
        let entries: Vec<Entry> = entries.iter().map(in_data_tar).collect();
        let mut tar = write_tar(Vec::new(), &entries, mtime, &|_| (0, 0))
            .map_err(io("write", Path::new("data.tar.gz")))?;
        tar.truncate(tar.len() - 1024); // the two zero blocks that end an archive
        let deflated = gradient_archive::deflate(&tar, LEVEL, End::Open);
        Ok(DataPart {
            crc: crc32fast::hash(&tar),
            length: tar.len() as u64,
            md5sums: String::new(),
            deflated_crc: crc32fast::hash(&deflated),
            deflated,
        })
    }

    /// `data.tar.gz`: this part, then `rest` and the end of the archive, in one gzip member.
    fn finish(&self, rest: &[&Entry], mtime: u64) -> Result<Vec<u8>, OsPkgError> {
        let rest: Vec<Entry> = rest.iter().map(|e| in_data_tar(e)).collect();
        let tail = write_tar(Vec::new(), &rest, mtime, &|_| (0, 0))
            .map_err(io("write", Path::new("data.tar.gz")))?;
        let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc, self.length);
        crc.update(&tail);
        let length = self.length + tail.len() as u64;
        let tail = gradient_archive::deflate(&tail, LEVEL, End::Closed);

        let mut gz = Vec::with_capacity(self.deflated.len() + tail.len() + 18);
        gz.extend_from_slice(&GZIP_HEADER);
        gz.extend_from_slice(&self.deflated);
        gz.extend_from_slice(&tail);
        gz.extend_from_slice(&gzip_trailer(crc.finalize(), length));
        Ok(gz)
    }
}

/// An entry as the data tarball names it: `./usr/...`.
fn in_data_tar(entry: &Entry) -> Entry {
    if entry.path == "." {
        return entry.clone();
    }
    Entry {
        path: format!("./{}", entry.path),
        ..entry.clone()
    }
}

/// The name prefix of a cached data part being written in `cache/ospkg/deb-data/`.
pub(crate) const DATA_STAGING_PREFIX: &str = ".deb-data-";

/// Write `path` through a locked staging file beside it, so it is whole or absent, and a
/// killed run's file is swept by the next (see [`crate::staging_areas`]).
fn write_beside(path: &Path, data: &[u8]) -> Result<(), OsPkgError> {
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    let mut temp = gradient_python::staging::Staged::file_in(&dir, DATA_STAGING_PREFIX)
        .map_err(io("create", &dir))?;
    temp.file().write_all(data).map_err(io("write", path))?;
    temp.persist(path).map_err(io("write", path))?;
    Ok(())
}

fn gzip_tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, OsPkgError> {
    let tar = write_tar(Vec::new(), entries, mtime, &|_| (0, 0))
        .map_err(io("write", Path::new("control.tar.gz")))?;
    Ok(gradient_archive::gzip(&tar, LEVEL))
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: 0o755,
    }
}

fn text(path: &str, content: &str, mode: u32) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::File(content.as_bytes().to_vec()),
        mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_names_its_package_and_the_host_names_stay() {
        let arm = package_file_name("app", "1.0", "1", true, Some(Platform::LinuxArm64));
        assert_eq!(arm, "app_1.0-1_arm64.deb");
        let amd = package_file_name("app", "1.0", "1", true, Some(Platform::LinuxAmd64));
        assert_eq!(amd, "app_1.0-1_amd64.deb");
        let pure = package_file_name("app", "1.0", "1", false, Some(Platform::LinuxArm64));
        assert_eq!(pure, "app_1.0-1_all.deb");
        assert_eq!(
            architecture(true, Platform::host()),
            architecture(true, None),
            "the host's own platform is named as before"
        );
    }

    #[test]
    fn a_synopsis_is_one_short_line_without_a_capital_article_or_full_stop() {
        assert_eq!(synopsis("The sample application."), "sample application");
        assert_eq!(synopsis("Tools\nmore"), "Tools");
    }

    fn entry(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(data.to_vec()),
            mode: 0o644,
        }
    }

    #[test]
    fn a_cached_part_and_the_rest_make_one_gzip_of_the_whole_tar_and_damage_is_repaired() {
        use std::io::Read;
        let cache = tempfile::tempdir().unwrap();
        let runtime: Vec<Entry> = (0..50)
            .map(|i| entry(&format!("usr/lib/app/f{i:02}"), &vec![i as u8; 5000 + i]))
            .collect();
        let rest = [dir("usr/bin"), entry("usr/bin/app", b"#!/bin/sh\n")];
        let refs: Vec<&Entry> = runtime.iter().collect();
        let fresh = DataPart::cached_or_made(cache.path(), "k", 7, &refs).unwrap();
        let gz = fresh.finish(&rest.iter().collect::<Vec<_>>(), 7).unwrap();

        let mut whole = vec![dir(".")];
        whole.extend(runtime.iter().cloned());
        whole.extend(rest.iter().cloned());
        let whole: Vec<Entry> = whole.iter().map(in_data_tar).collect();
        let expected = write_tar(Vec::new(), &whole, 7, &|_| (0, 0)).unwrap();
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, expected);
        assert_eq!(fresh.md5sums.lines().count(), 50);

        // Damage the cached deflate stream: it is noticed, made again, and the result is the same.
        let stored = std::fs::read_dir(cache.path().join("ospkg/deb-data"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "deflate"))
            .unwrap();
        let mut bytes = std::fs::read(&stored).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&stored, &bytes).unwrap();
        assert!(matches!(
            DataPart::read(&stored.with_extension("json"), &stored),
            Some(Err(_))
        ));
        let again = DataPart::cached_or_made(cache.path(), "k", 7, &refs).unwrap();
        assert_eq!(
            again.finish(&rest.iter().collect::<Vec<_>>(), 7).unwrap(),
            gz
        );
        assert!(matches!(
            DataPart::read(&stored.with_extension("json"), &stored),
            Some(Ok(_))
        ));
    }

    #[test]
    fn the_extended_description_is_indented_and_wrapped() {
        let text = extended(&"word ".repeat(40));
        assert!(text.lines().all(|l| l.starts_with(' ') && l.len() <= 74));
    }
}
