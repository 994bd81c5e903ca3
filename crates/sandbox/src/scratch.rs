//! The scratch base: the files of a root that holds only what the host's C library needs
//! (glibc, its loader, its C.UTF-8 locale), a merged-/usr skeleton and the default user.

use crate::SandboxError;
use gradient_archive::{folder_entries, Entry, EntryKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The uid and gid of the default user on a scratch base.
pub const APP_UID: u64 = 1000;

/// The scratch base: the C library the runtime links against, its loader at the path every
/// x86-64 executable names, a merged-/usr skeleton, and the default user. `glibc` is
/// `(soname, real file)` as [`gradient_python::runtime::glibc_files`] finds them.
pub fn scratch_base(glibc: &[(String, PathBuf)]) -> Result<Vec<Entry>, SandboxError> {
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut add = |entry: Entry| {
        files.insert(entry.path.clone(), entry);
    };
    for dir in [
        "etc",
        "home",
        "root",
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib64",
        "usr/sbin",
        "var",
    ] {
        add(dir_entry(dir));
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        add(symlink(link, target));
    }
    add(Entry {
        mode: 0o1777,
        ..dir_entry("tmp")
    });
    add(Entry {
        mode: 0o1777,
        ..dir_entry("var/tmp")
    });
    add(dir_entry(&format!("home/{}", gradient_core::DEFAULT_USER)));
    let user = gradient_core::DEFAULT_USER;
    add(text(
        "etc/passwd",
        &format!("root:x:0:0:root:/root:/sbin/nologin\n{user}:x:{APP_UID}:{APP_UID}:{user}:/home/{user}:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"),
    ));
    add(text(
        "etc/group",
        &format!("root:x:0:\n{user}:x:{APP_UID}:\nnogroup:x:65534:\n"),
    ));
    add(text(
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ));
    add(text("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"));
    let lib_dir = library_dir(glibc)?;
    let mut parent = String::new();
    for part in lib_dir.split('/') {
        parent = if parent.is_empty() {
            part.to_string()
        } else {
            format!("{parent}/{part}")
        };
        add(dir_entry(&parent));
    }
    for entry in libraries(&lib_dir, glibc)? {
        add(entry);
    }
    for (soname, _) in glibc {
        // Where executables name their loader: /lib64 on x86_64, /lib on aarch64.
        let loader_dir = if soname.starts_with("ld-linux-aarch64") {
            "usr/lib"
        } else {
            "usr/lib64"
        };
        if soname.starts_with("ld-linux") && lib_dir != loader_dir {
            add(symlink(
                &format!("{loader_dir}/{soname}"),
                &format!(
                    "{}/{soname}",
                    relative_from(loader_dir, &lib_dir)
                        .unwrap_or_else(|| format!("../{}", lib_dir.trim_start_matches("usr/")))
                ),
            ));
        }
    }
    // The C.UTF-8 locale the image's LANG names: glibc does not build it in, so without
    // its files `setlocale(LC_ALL, "")` fails ("unsupported locale setting"). Taken from the
    // host that gives the C library, so that they match it.
    let locale = Path::new(HOST_LOCALE);
    if locale.is_dir() {
        add(dir_entry("usr/lib/locale"));
        for entry in gradient_archive::tree_entries(locale, "usr/lib/locale/C.utf8")? {
            add(entry);
        }
    }
    Ok(files.into_values().collect())
}

/// The folder the host keeps its C library in, under /usr in the image
/// (`usr/lib/x86_64-linux-gnu`): where the scratch base puts the libraries it carries.
fn library_dir(glibc: &[(String, PathBuf)]) -> Result<String, SandboxError> {
    let Some(libc) = glibc.iter().find(|(name, _)| name == "libc.so.6") else {
        return Err(SandboxError::NoGlibc);
    };
    let host_dir = libc.1.parent().unwrap_or(Path::new("/lib"));
    // A multiarch folder (`…/lib/aarch64-linux-gnu`) goes under usr/lib wherever it is,
    // so a root other than the host's (another platform's C library) places the same.
    if let Some(triplet) = host_dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .filter(|n| n.ends_with("-linux-gnu"))
    {
        return Ok(format!("usr/lib/{triplet}"));
    }
    let relative = host_dir
        .strip_prefix("/usr")
        .unwrap_or(host_dir.strip_prefix("/").unwrap_or(host_dir));
    Ok(format!("usr/{}", relative.display()))
}

/// `to` relative to the folder `from` when `to` lies below it (`usr/lib`,
/// `usr/lib/aarch64-linux-gnu` → `aarch64-linux-gnu`).
fn relative_from(from: &str, to: &str) -> Option<String> {
    to.strip_prefix(from)?.strip_prefix('/').map(str::to_string)
}

/// `(soname, real file)` pairs as files named by their soname in `lib_dir`.
fn libraries(lib_dir: &str, found: &[(String, PathBuf)]) -> Result<Vec<Entry>, SandboxError> {
    found
        .iter()
        .map(|(soname, real)| {
            let data = std::fs::read(real).map_err(|source| SandboxError::Io {
                action: "read",
                path: real.clone(),
                source,
            })?;
            Ok(Entry {
                path: format!("{lib_dir}/{soname}"),
                kind: EntryKind::File(data),
                mode: 0o755,
            })
        })
        .collect()
}

/// The system libraries beyond glibc that the app's extension modules link (as
/// [`gradient_python::runtime::system_libraries`] finds them), for a scratch base: beside
/// the C library, where the loader looks. A base of its own brings them (or not) itself.
pub fn system_libraries(
    glibc: &[(String, PathBuf)],
    found: &[(String, PathBuf)],
) -> Result<Vec<Entry>, SandboxError> {
    let lib_dir = library_dir(glibc)?;
    let mut entries = folder_entries(&lib_dir);
    entries.extend(libraries(&lib_dir, found)?);
    Ok(entries)
}

/// Where glibc keeps the compiled C.UTF-8 locale (Debian's libc-bin, glibc 2.35 and later).
pub const HOST_LOCALE: &str = "/usr/lib/locale/C.utf8";

/// Who owns what in the scratch base: the default user's home is theirs.
pub fn scratch_owner(entry: &Entry) -> (u64, u64) {
    let home = format!("home/{}", gradient_core::DEFAULT_USER);
    if entry.path == home || entry.path.starts_with(&format!("{home}/")) {
        (APP_UID, APP_UID)
    } else {
        (0, 0)
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: 0o755,
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Symlink(target.to_string()),
        mode: 0o777,
    }
}

fn text(path: &str, content: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::File(content.as_bytes().to_vec()),
        mode: 0o644,
    }
}
