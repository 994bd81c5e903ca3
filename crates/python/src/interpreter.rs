//! Finding the build interpreter and probing its facts, once per interpreter.
//!
//! Search order: an explicit path; else for a version `X.Y`, pyenv's versions folder (newest
//! patch first) then `pythonX.Y` on PATH (pyenv shims skipped: they answer for whichever
//! version is selected); else `python3` on PATH. Facts are cached under `cache_root()/interpreters`, keyed by the real
//! executable and invalidated when its size or modification time changes.
//!
//! Another machine's interpreter (Debian's arm64 CPython in a root folder,
//! [`crate::target_python`]) is probed the same way under qemu-user ([`foreign_interpreter`]):
//! it runs from its host path, so the paths it reports are the root's paths on this host.

use crate::PythonError;
use gradient_core::InterpreterFacts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PythonRequest {
    /// Whatever `python3` is on PATH.
    Default,
    /// A `major.minor` version.
    Version(u32, u32, Option<u32>),
    /// An executable.
    Path(PathBuf),
}

impl PythonRequest {
    /// `3.11` (any patch) and `3.11.7` (exactly) are versions; anything with a `/` or that
    /// names an existing file is a path; other words (`python3.12`, `pypy3`) are looked up on
    /// PATH.
    pub fn parse(text: &str) -> PythonRequest {
        let text = text.trim();
        let numbers: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[major, minor]) => return PythonRequest::Version(major, minor, None),
            Some(&[major, minor, patch]) => {
                return PythonRequest::Version(major, minor, Some(patch))
            }
            _ => {}
        }
        if text.contains('/') || Path::new(text).is_file() {
            return PythonRequest::Path(PathBuf::from(text));
        }
        match which(text) {
            Some(path) => PythonRequest::Path(path),
            None => PythonRequest::Path(PathBuf::from(text)),
        }
    }
}

impl std::fmt::Display for PythonRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PythonRequest::Default => f.write_str("`python3` on PATH"),
            PythonRequest::Version(major, minor, None) => write!(f, "Python {major}.{minor}"),
            PythonRequest::Version(major, minor, Some(patch)) => {
                write!(f, "Python {major}.{minor}.{patch}")
            }
            PythonRequest::Path(path) => write!(f, "`{}`", path.display()),
        }
    }
}

/// Find an interpreter for `request` and return its (possibly cached) facts.
pub async fn find_interpreter(
    request: &PythonRequest,
    cache_root: &Path,
) -> Result<InterpreterFacts, PythonError> {
    let candidates = candidates(request);
    let hint_version = match request {
        PythonRequest::Version(major, minor, None) => format!("{major}.{minor}"),
        PythonRequest::Version(major, minor, Some(patch)) => format!("{major}.{minor}.{patch}"),
        _ => "3.11".to_string(),
    };
    let mut last_error = None;
    let mut any_usable = false;
    for candidate in &candidates {
        match probe_cached(candidate, cache_root).await {
            Ok(facts) => {
                any_usable = true;
                if let PythonRequest::Version(major, minor, patch) = request {
                    let wrong_patch = patch.is_some_and(|p| p != facts.version.2);
                    if (facts.version.0, facts.version.1) != (*major, *minor) || wrong_patch {
                        continue;
                    }
                }
                return Ok(facts);
            }
            Err(err) => last_error = Some(err),
        }
    }
    // Found, but none of them usable (too old, say): that is the news, not "not found".
    if let (false, Some(err)) = (any_usable, last_error) {
        return Err(err);
    }
    Err(PythonError::NotFound {
        request: request.to_string(),
        hint_version,
        searched: candidates.iter().map(|c| c.display().to_string()).collect(),
    })
}

fn candidates(request: &PythonRequest) -> Vec<PathBuf> {
    match request {
        PythonRequest::Path(path) => vec![path.clone()],
        PythonRequest::Default => ["python3", "python"]
            .iter()
            .filter_map(|n| which(n))
            .collect(),
        PythonRequest::Version(major, minor, _) => {
            // pyenv's builds first: they are what the user installed on purpose, and they
            // link libpython as a shared library, which the runtime bundle can relocate.
            let name = format!("python{major}.{minor}");
            let mut found = pyenv_versions(*major, *minor, &name);
            found.extend(
                path_dirs()
                    .filter(|dir| !is_shim_dir(dir))
                    .map(|dir| dir.join(&name))
                    .filter(|p| p.is_file()),
            );
            found
        }
    }
}

/// pyenv's installed `X.Y.*` versions, newest patch first.
fn pyenv_versions(major: u32, minor: u32, exe: &str) -> Vec<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let Some(versions) = root.map(|r| r.join("versions")) else {
        return Vec::new();
    };
    let prefix = format!("{major}.{minor}.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let patch = name.strip_prefix(&prefix)?.parse().ok()?;
            let exe = entry.path().join("bin").join(exe);
            exe.is_file().then_some((patch, exe))
        })
        .collect();
    found.sort_by_key(|(patch, _)| std::cmp::Reverse(*patch));
    found.into_iter().map(|(_, p)| p).collect()
}

fn path_dirs() -> impl Iterator<Item = PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
}

fn is_shim_dir(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "shims")
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path_dirs().map(|d| d.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    stamp: (u64, u64),
    facts: InterpreterFacts,
}

fn stamp(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as u64;
    Some((mtime, meta.len()))
}

/// Probe `path`, reading and writing the facts cache. A shim is probed every time (what it
/// runs depends on the shell's state) but the real executable it reports is cached.
async fn probe_cached(path: &Path, cache_root: &Path) -> Result<InterpreterFacts, PythonError> {
    probe_cached_in(path, None, cache_root).await
}

/// The facts of the foreign interpreter of `target`, probed under qemu-user with
/// `QEMU_LD_PREFIX` at its root (the same probe as the host's, so the same facts: its
/// `executable` and `base_prefix` are paths inside the root), cached like the host's.
pub async fn foreign_interpreter(
    target: &crate::target_python::DebianPython,
    cache_root: &Path,
) -> Result<InterpreterFacts, PythonError> {
    let facts = probe_cached_in(&target.executable, Some(&target.root), cache_root).await?;
    if !facts.base_prefix.starts_with(&target.root) {
        return Err(PythonError::Unusable {
            path: target.executable.clone(),
            reason: format!(
                "it reports its prefix at `{}`, outside its root `{}`",
                facts.base_prefix.display(),
                target.root.display()
            ),
        });
    }
    Ok(facts)
}

/// [`probe_cached`], run under qemu-user with `QEMU_LD_PREFIX=loader_prefix` when given.
async fn probe_cached_in(
    path: &Path,
    loader_prefix: Option<&Path>,
    cache_root: &Path,
) -> Result<InterpreterFacts, PythonError> {
    let cacheable = !path.parent().is_some_and(is_shim_dir);
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let cache_file = cache_root.join("interpreters").join(format!(
        "{}.json",
        &hex::encode(Sha256::digest(real.as_os_str().as_encoded_bytes()))[..16]
    ));
    let current = stamp(&real);
    if cacheable {
        if let Some(entry) = std::fs::read(&cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
        {
            if Some(entry.stamp) == current {
                return Ok(entry.facts);
            }
        }
    }
    let facts = probe(path, loader_prefix).await?;
    // What was probed is what the facts describe: the path given, unless it is a shim,
    // which runs the executable it reports as it is. A wrapper of another kind (a script
    // that sets the environment, say) may change what the interpreter says of itself, so
    // its facts are never recorded as the executable's own.
    let (described, stamped) = match cacheable {
        true => (real.clone(), current),
        false => (facts.executable.clone(), stamp(&facts.executable)),
    };
    if let Some(stamp) = stamped {
        let real_cache = cache_root.join("interpreters").join(format!(
            "{}.json",
            &hex::encode(Sha256::digest(described.as_os_str().as_encoded_bytes()))[..16]
        ));
        let entry = CacheEntry {
            stamp,
            facts: facts.clone(),
        };
        // A cache that cannot be written only costs a probe next time.
        let _ = write_atomically(
            &real_cache,
            &serde_json::to_vec_pretty(&entry).unwrap_or_default(),
        );
    }
    Ok(facts)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = crate::staging::Staged::file_in(dir, ".tmp")?;
    std::io::Write::write_all(&mut tmp.file(), bytes)?;
    tmp.persist(path)
}

const PROBE: &str = r#"
import json, os, platform, sys, sysconfig
impl = sys.implementation.name
v = sys.version_info
if impl == "cpython":
    py = "cp%d%d" % (v[0], v[1])
    abi = py + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
else:
    py = "pp%d%d" % (v[0], v[1]) if impl == "pypy" else impl
    abi = (sysconfig.get_config_var("SOABI") or "none").replace("-", "_").replace(".", "_")
libc = platform.libc_ver()
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "implementation": impl,
    "version": [v[0], v[1], v[2]],
    "python_tag": py,
    "abi_tag": abi,
    "platform_tag": sysconfig.get_platform().replace("-", "_").replace(".", "_"),
    "base_prefix": sys.base_prefix,
    "libc": list(libc) if libc[0] else None,
}))
"#;

async fn probe(path: &Path, loader_prefix: Option<&Path>) -> Result<InterpreterFacts, PythonError> {
    let unusable = |reason: String| PythonError::Unusable {
        path: path.to_path_buf(),
        reason,
    };
    let mut command = Command::new(path);
    command
        .args(["-I", "-S", "-B", "-c", PROBE])
        .env_clear()
        .envs(crate::isolated_env());
    if let Some(prefix) = loader_prefix {
        // qemu-user takes the loader and the C library from there.
        command.env("QEMU_LD_PREFIX", prefix);
    }
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| unusable(format!("it could not be started ({e})")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(unusable(format!(
            "probing it failed with {}: {}",
            output.status,
            stderr.lines().last().unwrap_or("")
        )));
    }
    let facts: InterpreterFacts = serde_json::from_slice(&output.stdout)
        .map_err(|e| unusable(format!("its probe answered something unexpected ({e})")))?;
    if facts.version < (3, 8, 0) {
        return Err(unusable(format!(
            "it is Python {}, and gradient needs 3.8 or newer",
            facts.full_version()
        )));
    }
    tracing::debug!("probed {facts}");
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(
            PythonRequest::parse("3.11"),
            PythonRequest::Version(3, 11, None)
        );
        assert_eq!(
            PythonRequest::parse("3.11.7"),
            PythonRequest::Version(3, 11, Some(7))
        );

        assert_eq!(
            PythonRequest::parse("/opt/py/bin/python3"),
            PythonRequest::Path("/opt/py/bin/python3".into())
        );
    }

    #[tokio::test]
    async fn probing_the_default_python_reports_consistent_tags() {
        let cache = tempfile::tempdir().unwrap();
        let facts = find_interpreter(&PythonRequest::Default, cache.path())
            .await
            .unwrap();
        assert!(facts.executable.is_absolute());
        assert_eq!(
            facts.python_tag,
            format!("cp{}{}", facts.version.0, facts.version.1)
        );
        // A second lookup is answered from the cache with the same facts.
        let again = find_interpreter(&PythonRequest::Path(facts.executable.clone()), cache.path())
            .await
            .unwrap();
        assert_eq!(facts, again);
        assert!(
            cache
                .path()
                .join("interpreters")
                .read_dir()
                .unwrap()
                .count()
                >= 1
        );
    }

    #[tokio::test]
    async fn a_wrapper_that_changes_what_the_interpreter_says_does_not_speak_for_it() {
        let cache = tempfile::tempdir().unwrap();
        let real = find_interpreter(&PythonRequest::Default, cache.path())
            .await
            .unwrap();
        // A script that runs the same interpreter as if it were for another machine.
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("python3-elsewhere");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n_PYTHON_HOST_PLATFORM=linux-elsewhere exec {} \"$@\"\n",
                real.executable.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let wrapped = find_interpreter(&PythonRequest::Path(wrapper.clone()), cache.path())
            .await
            .unwrap();
        assert_eq!(wrapped.platform_tag, "linux_elsewhere");
        assert_eq!(wrapped.executable, real.executable);
        // The executable's own facts are still its own, from the cache or a new probe.
        let again = find_interpreter(&PythonRequest::Path(real.executable.clone()), cache.path())
            .await
            .unwrap();
        assert_eq!(again.platform_tag, real.platform_tag);
        // And the wrapper's are remembered as the wrapper's.
        let wrapped_again = find_interpreter(&PythonRequest::Path(wrapper), cache.path())
            .await
            .unwrap();
        assert_eq!(wrapped_again.platform_tag, "linux_elsewhere");
    }

    #[tokio::test]
    async fn a_missing_path_is_reported_as_unusable() {
        let cache = tempfile::tempdir().unwrap();
        let err = find_interpreter(
            &PythonRequest::Path("/nonexistent/python9".into()),
            cache.path(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/python9"), "{err}");
    }
}
