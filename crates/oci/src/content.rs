//! What goes into each layer of an image, as archive entries.
//!
//! ```text
//!  base (scratch only)  glibc + loader from the build host, /etc/passwd, /etc/group, /tmp
//!  runtime              the runtime bundle under /usr/local          (changes with Python)
//!  dependencies         the wheelhouse in site-packages, compiled    (changes with the lock)
//!  app                  the wheel in site-packages, compiled, and one
//!                       console script per entry point in bin/       (changes every release)
//! ```

use crate::OciError;
use gradient_archive::{tree_entries, Entry, EntryKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The runtime bundle's place in an image on a scratch base.
pub const RUNTIME_PREFIX: &str = "usr/local";

/// The uid and gid of the default user on a scratch base.
pub const APP_UID: u64 = 1000;

/// Where Python things go in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The interpreter, absolute (`/usr/local/bin/python3.11`).
    pub python: String,
    /// site-packages, relative to the image root (`usr/local/lib/python3.11/site-packages`).
    pub site: String,
    /// Where console scripts go, relative (`usr/local/bin`).
    pub bin: String,
}

impl Placement {
    /// The runtime bundle at [`RUNTIME_PREFIX`].
    pub fn bundled(python: &str, site_packages: &str) -> Placement {
        Placement {
            python: format!("/{RUNTIME_PREFIX}/{python}"),
            site: format!("{RUNTIME_PREFIX}/{site_packages}"),
            bin: format!("{RUNTIME_PREFIX}/bin"),
        }
    }
}

/// The scratch base: the C library the runtime links against, its loader at the path every
/// x86-64 executable names, a merged-/usr skeleton, and the default user. `glibc` is
/// `(soname, real file)` as [`gradient_python::runtime::glibc_files`] finds them.
pub fn scratch_base(glibc: &[(String, PathBuf)]) -> Result<Vec<Entry>, OciError> {
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
        if soname.starts_with("ld-linux") && lib_dir != "usr/lib64" {
            add(symlink(
                &format!("usr/lib64/{soname}"),
                &format!("../{}/{soname}", lib_dir.trim_start_matches("usr/")),
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
fn library_dir(glibc: &[(String, PathBuf)]) -> Result<String, OciError> {
    let Some(libc) = glibc.iter().find(|(name, _)| name == "libc.so.6") else {
        return Err(OciError::NoGlibc);
    };
    let host_dir = libc.1.parent().unwrap_or(Path::new("/lib"));
    let relative = host_dir
        .strip_prefix("/usr")
        .unwrap_or(host_dir.strip_prefix("/").unwrap_or(host_dir));
    Ok(format!("usr/{}", relative.display()))
}

/// `(soname, real file)` pairs as files named by their soname in `lib_dir`.
fn libraries(lib_dir: &str, found: &[(String, PathBuf)]) -> Result<Vec<Entry>, OciError> {
    found
        .iter()
        .map(|(soname, real)| {
            let data = std::fs::read(real).map_err(|source| OciError::Io {
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
) -> Result<Vec<Entry>, OciError> {
    let lib_dir = library_dir(glibc)?;
    let mut entries = parents(&lib_dir);
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

/// The runtime bundle under [`RUNTIME_PREFIX`], with its parent folders.
pub fn runtime(bundle: &Path) -> Result<Vec<Entry>, OciError> {
    let mut entries = parents(RUNTIME_PREFIX);
    entries.extend(tree_entries(bundle, RUNTIME_PREFIX)?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// A site-packages layer: `fill` puts files into a staging copy of `placement.site`, which
/// is then byte-compiled by `python` for the paths it has in the image. `scripts` (name →
/// file content) go into `placement.bin`.
pub async fn site_layer(
    staging: &Path,
    placement: &Placement,
    python: &Path,
    fill: impl FnOnce(&Path) -> Result<(), OciError>,
    scripts: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<Entry>, OciError> {
    let site = staging.join(&placement.site);
    std::fs::create_dir_all(&site).map_err(|source| OciError::Io {
        action: "create",
        path: site.clone(),
        source,
    })?;
    fill(&site)?;
    gradient_python::runtime::compile_tree(python, &site, staging, &[]).await?;
    let mut entries = tree_entries(staging, "")?;
    if !scripts.is_empty() {
        entries.extend(parents(&placement.bin));
        for (name, text) in scripts {
            entries.push(Entry {
                path: format!("{}/{name}", placement.bin),
                kind: EntryKind::File(text.clone()),
                mode: 0o755,
            });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`.
fn parents(path: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut current = String::new();
    for part in path.split('/') {
        if !current.is_empty() {
            current.push('/');
        }
        current.push_str(part);
        entries.push(dir_entry(&current));
    }
    entries
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
