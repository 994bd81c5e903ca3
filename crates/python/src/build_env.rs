//! Isolated PEP 517 build environments, cached.
//!
//! One environment per (interpreter, installer, requirement set), under
//! `cache_root()/build-envs/KEY`. It is made in a temporary folder beside its final place and
//! renamed into it, with a marker written last, so a crash or a concurrent run never leaves a
//! half-made environment that a later build would trust.

use crate::installer::{Installer, Source};
use crate::staging::Staged;
use crate::PythonError;
use gradient_core::InterpreterFacts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const MARKER: &str = "gradient-build-env.json";

/// A ready build environment.
#[derive(Clone, Debug)]
pub struct BuildEnv {
    pub dir: PathBuf,
    /// The environment's interpreter.
    pub python: PathBuf,
    /// Whether it was reused from the cache.
    pub reused: bool,
    marker: Marker,
}

/// Bumped whenever how an environment is made changes (2: byte-compiled).
const FORMAT: &str = "build-env-2";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Marker {
    requires: BTreeSet<String>,
    /// Requirements added later by `get_requires_for_build_*`.
    extra: BTreeSet<String>,
}

impl BuildEnv {
    /// The cached environment for `requires`, made first if needed.
    pub async fn ensure(
        python: &InterpreterFacts,
        requires: &[String],
        installer: &Installer,
        cache_root: &Path,
    ) -> Result<BuildEnv, PythonError> {
        let requires: BTreeSet<String> = requires.iter().map(|r| r.trim().to_string()).collect();
        let mut hasher = Sha256::new();
        hasher.update(FORMAT);
        hasher.update(python.executable.as_os_str().as_encoded_bytes());
        hasher.update(python.full_version());
        hasher.update(installer.name());
        for requirement in &requires {
            hasher.update([0]);
            hasher.update(requirement);
        }
        let key = &hex::encode(hasher.finalize())[..20];
        let parent = cache_root.join("build-envs");
        let dir = parent.join(key);
        if let Some(marker) = read_marker(&dir) {
            tracing::debug!("reusing build environment {}", dir.display());
            return Ok(BuildEnv {
                python: dir.join("bin").join("python"),
                dir,
                reused: true,
                marker,
            });
        }
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| PythonError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        if dir.exists() {
            // No marker: an interrupted or corrupted environment. Never trust it.
            tracing::warn!("rebuilding incomplete build environment {}", dir.display());
            std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
        }
        let mut staging =
            Staged::dir_in(&parent, &format!(".{key}-")).map_err(io("create", &parent))?;
        tracing::info!(
            "creating build environment with {}",
            requires.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let venv_python = installer
            .create_venv(&python.executable, staging.path())
            .await?;
        let args: Vec<OsString> = requires.iter().map(OsString::from).collect();
        installer
            .install_compiled(&venv_python, &args, Source::Index)
            .await?;
        let marker = Marker {
            requires,
            extra: BTreeSet::new(),
        };
        write_marker(staging.path(), &marker).map_err(io("write", staging.path()))?;
        // When this fails, another run finished the same environment first: use theirs.
        let _ = staging.persist(&dir);
        drop(staging);
        let marker = read_marker(&dir).unwrap_or(marker);
        Ok(BuildEnv {
            python: dir.join("bin").join("python"),
            dir,
            reused: false,
            marker,
        })
    }

    /// Install what a `get_requires_for_build_*` hook asked for, unless already there.
    pub async fn ensure_extra(
        &mut self,
        requirements: &[String],
        installer: &Installer,
    ) -> Result<(), PythonError> {
        let missing: Vec<String> = requirements
            .iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !self.marker.requires.contains(r) && !self.marker.extra.contains(r))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!("adding {} to the build environment", missing.join(", "));
        let args: Vec<OsString> = missing.iter().map(OsString::from).collect();
        installer
            .install_compiled(&self.python, &args, Source::Index)
            .await?;
        self.marker.extra.extend(missing);
        write_marker(&self.dir, &self.marker).map_err(|source| PythonError::Io {
            action: "write",
            path: self.dir.join(MARKER),
            source,
        })
    }
}

fn read_marker(dir: &Path) -> Option<Marker> {
    let bytes = std::fs::read(dir.join(MARKER)).ok()?;
    let marker = serde_json::from_slice(&bytes).ok()?;
    dir.join("bin").join("python").exists().then_some(marker)
}

fn write_marker(dir: &Path, marker: &Marker) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &serde_json::to_vec_pretty(marker)?)?;
    tmp.persist(dir.join(MARKER)).map_err(|e| e.error)?;
    Ok(())
}
