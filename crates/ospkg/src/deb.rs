//! A `.deb` written natively: an `ar` archive of `debian-binary`, `control.tar.gz`
//! (control, md5sums, maintainer scripts) and `data.tar.gz` (the files), every member and
//! entry at the source date and owned by root, so the same spec gives the same bytes.

use crate::spec::{Dependency, PackageSpec};
use crate::{io, OsPkgError};
use flate2::{Compression, GzBuilder};
use gradient_archive::{write_tar, Entry, EntryKind};
use md5::{Digest, Md5};
use std::io::Write;
use std::path::Path;

/// Debian's name for the architecture of the build (`amd64`), or `all`.
pub fn architecture(native: bool) -> &'static str {
    if !native {
        return "all";
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
    format!(
        "{}_{}-{}_{}.deb",
        spec.name,
        spec.version.upstream,
        spec.revision,
        architecture(spec.native)
    )
}

/// Write the package to `path`.
pub fn write_deb(spec: &PackageSpec, mtime: u64, path: &Path) -> Result<(), OsPkgError> {
    let mut files = spec.files.clone();
    files.push(changelog(spec, mtime)?);
    files.push(lintian_overrides(spec));
    for dir_path in ["usr/share/lintian", "usr/share/lintian/overrides"] {
        if !files.iter().any(|e| e.path == dir_path) {
            files.push(dir(dir_path));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let data_entries: Vec<Entry> = std::iter::once(dir("."))
        .chain(files.iter().map(|e| Entry {
            path: format!("./{}", e.path),
            ..e.clone()
        }))
        .collect();
    let data = gzip_tar(&data_entries, mtime)?;

    let mut control_entries = vec![
        dir("."),
        text("./control", &control(spec, &files), 0o644),
        text("./md5sums", &md5sums(&files), 0o644),
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
        architecture(spec.native)
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
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + word.len() + 1 > 72 {
            out.push_str(&format!(" {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

fn md5sums(files: &[Entry]) -> String {
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

fn gzip_tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, OsPkgError> {
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(6));
    let gz = write_tar(gz, entries, mtime, &|_| (0, 0))
        .map_err(io("write", Path::new("data.tar.gz")))?;
    gz.finish().map_err(io("write", Path::new("data.tar.gz")))
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
    fn a_synopsis_is_one_short_line_without_a_capital_article_or_full_stop() {
        assert_eq!(synopsis("The sample application."), "sample application");
        assert_eq!(synopsis("Tools\nmore"), "Tools");
    }

    #[test]
    fn the_extended_description_is_indented_and_wrapped() {
        let text = extended(&"word ".repeat(40));
        assert!(text.lines().all(|l| l.starts_with(' ') && l.len() <= 74));
    }
}
