//! Built distributions, cached by everything that can change them: the source tree's files,
//! the build system, the interpreter, the route, the source date and the git state. A
//! rebuild with none of these changed reuses the normalised files without running a hook.
//!
//! Entries live in `cache_root()/dists/KEY/`, written through a staging folder and a
//! rename; each records its files' sha256, checked on every reuse so a corrupted entry is
//! rebuilt rather than trusted.

use crate::build::BuildRequest;
use gradient_python::staging::Staged;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const RECORD: &str = "gradient-dists.json";

/// Folders anywhere in the tree that never hold sources.
const IGNORED_ANYWHERE: &[&str] = &[".git", ".hg", ".svn", "__pycache__"];

/// Top-level folders that builds, tools and environments write (a package folder deeper in
/// the tree may well be called `build` or `target`, and counts).
const IGNORED_AT_TOP: &[&str] = &[
    "dist",
    "build",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "node_modules",
    "target",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".eggs",
];

/// What a cache entry holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub sdist: Option<(String, String)>,
    pub wheel: Option<(String, String)>,
    pub sdist_matches_source: Option<Result<Option<String>, String>>,
}

/// The cache key of a request, or `None` when the tree cannot be read.
pub(crate) async fn key(request: &BuildRequest<'_>, out_dir: Option<&Path>) -> Option<String> {
    let project = request.project;
    let mut hasher = Sha256::new();
    let mut field = |value: &[u8]| {
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(own_identity().as_bytes());
    field(request.python.executable.as_os_str().as_encoded_bytes());
    field(request.python.full_version().as_bytes());
    field(request.installer.name().as_bytes());
    field(project.build_system.backend.as_bytes());
    for requirement in &project.build_system.requires {
        field(requirement.as_bytes());
    }
    for path in &project.build_system.backend_path {
        field(path.as_bytes());
    }
    field(&[
        request.route as u8,
        request.want_sdist as u8,
        request.want_wheel as u8,
    ]);
    field(&request.source_date.seconds.to_le_bytes());
    field(git_state(&project.root).await.as_bytes());
    let root = project.root.clone();
    let out_dir = out_dir.map(Path::to_path_buf);
    let tree = tokio::task::spawn_blocking(move || tree_digest(&root, out_dir.as_deref()))
        .await
        .ok()??;
    field(tree.as_bytes());
    Some(hex::encode(hasher.finalize()))
}

/// `git describe` of the project, so a new tag or a dirty tree (which VCS version plugins
/// put in the version) is a new key. Empty outside a git checkout.
async fn git_state(root: &Path) -> String {
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["describe", "--tags", "--always", "--dirty", "--long"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await;
    output
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The digest of every file under `root` (sorted, with its path), build products left out.
fn tree_digest(root: &Path, out_dir: Option<&Path>) -> Option<String> {
    let mut hasher = Sha256::new();
    let walk = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            let ignored = entry.file_type().is_dir()
                && (IGNORED_ANYWHERE.contains(&name.as_ref())
                    || name.ends_with(".egg-info")
                    || (entry.depth() == 1 && IGNORED_AT_TOP.contains(&name.as_ref())));
            !ignored && out_dir != Some(entry.path())
        });

    for entry in walk {
        let entry = entry.ok()?;
        let relative = entry
            .path()
            .strip_prefix(root)
            .ok()?
            .to_string_lossy()
            .into_owned();
        if entry.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).ok()?;
            hasher.update(format!("L{relative}\0{}\0", target.display()));
        } else if entry.file_type().is_file() {
            use std::os::unix::fs::PermissionsExt;
            let data = std::fs::read(entry.path()).ok()?;
            let executable = entry.metadata().ok()?.permissions().mode() & 0o111 != 0;
            hasher.update(format!("F{relative}\0{executable}\0{}\0", data.len()));
            hasher.update(&data);
        }
    }
    Some(hex::encode(hasher.finalize()))
}

/// Files of a cache entry that are intact, copied into `dest`.
pub(crate) enum Lookup {
    Hit(Record, Option<PathBuf>, Option<PathBuf>),
    Miss,
    /// The entry exists but a file's digest does not match: rebuilt, and said.
    Corrupt(String),
}

/// The file names of the sdist and the wheel an entry holds, without reading them.
pub(crate) fn names(cache_root: &Path, key: &str) -> Option<(Option<String>, Option<String>)> {
    let bytes = std::fs::read(cache_root.join("dists").join(key).join(RECORD)).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    Some((
        record.sdist.map(|(name, _)| name),
        record.wheel.map(|(name, _)| name),
    ))
}

pub(crate) fn lookup(cache_root: &Path, key: &str, dest: &Path) -> Lookup {
    let dir = cache_root.join("dists").join(key);
    let Ok(bytes) = std::fs::read(dir.join(RECORD)) else {
        return Lookup::Miss;
    };
    let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
        return Lookup::Corrupt(format!("`{}` is unreadable", dir.join(RECORD).display()));
    };
    let mut restored = Vec::new();
    for entry in [&record.sdist, &record.wheel] {
        let Some((name, sha256)) = entry else {
            restored.push(None);
            continue;
        };
        let cached = dir.join(name);
        match std::fs::read(&cached) {
            Ok(data) if hex::encode(Sha256::digest(&data)) == *sha256 => {
                let target = dest.join(name);
                if std::fs::write(&target, &data).is_err() {
                    return Lookup::Miss;
                }
                restored.push(Some(target));
            }
            _ => {
                return Lookup::Corrupt(format!(
                    "`{}` does not match its recorded digest",
                    cached.display()
                ))
            }
        }
    }
    let wheel = restored.pop().flatten();
    let sdist = restored.pop().flatten();
    Lookup::Hit(record, sdist, wheel)
}

/// Store finished files under `key`; a failure only costs a rebuild next time.
pub(crate) fn store(
    cache_root: &Path,
    key: &str,
    sdist: Option<&Path>,
    wheel: Option<&Path>,
    sdist_matches_source: &Option<Result<Option<String>, String>>,
) {
    let parent = cache_root.join("dists");
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&parent)?;
        let mut staging = Staged::dir_in(&parent, &format!(".{key}-"))?;
        let entry = |path: Option<&Path>| -> std::io::Result<Option<(String, String)>> {
            let Some(path) = path else { return Ok(None) };
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let data = std::fs::read(path)?;
            std::fs::write(staging.path().join(&name), &data)?;
            Ok(Some((name, hex::encode(Sha256::digest(&data)))))
        };
        let record = Record {
            sdist: entry(sdist)?,
            wheel: entry(wheel)?,
            sdist_matches_source: sdist_matches_source.clone(),
        };
        std::fs::write(
            staging.path().join(RECORD),
            serde_json::to_vec_pretty(&record)?,
        )?;
        let dir = parent.join(key);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = staging.persist(&dir);
        Ok(())
    })();
    if let Err(err) = result {
        tracing::debug!("not caching the distributions: {err}");
    }
}

/// This gradient binary's size and modification time: a new build of gradient (which may
/// normalise differently) must not reuse what an older one cached under the same version.
fn own_identity() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|meta| {
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} {modified}", meta.len())
        })
        .unwrap_or_default()
}
