//! Finished tiers kept between runs, so that a rebuild with nothing changed is a no-op.
//!
//! A tier's output is a function of what goes in: this build of gradient, the tier, the
//! project's `pyproject.toml`, the build interpreter, the source date, the image tags, the
//! shared inputs it declares (by content) and what its backend adds as a fingerprint. The
//! digest of all that names an entry, `CACHE/tiers/NAME-TIER-KEY/`: the artifact files and
//! `entry.json` with their records (digests, target needs, smoke result). An entry is made
//! in a temporary folder and renamed into place, so it is whole or absent; a file whose
//! digest no longer matches makes the entry damaged: it is removed and the tier rebuilt.
//! The newest few entries of each project and tier are kept.

use crate::manifest::ArtifactRecord;
use crate::publish::file_digest;
use gradient_core::{Backend, Input, Inputs, InterpreterFacts, Project, SourceDate};
use gradient_python::staging::Staged;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name prefix of an entry being stored in `cache/tiers/`.
pub(crate) const STAGING_PREFIX: &str = ".storing-";

/// Entries kept per project and tier; older ones are removed when a new one is stored.
const KEEP: usize = 3;
const ENTRY_FILE: &str = "entry.json";

/// What a cached tier holds besides its files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// As recorded when the tier was built (and last smoke-tested).
    pub records: Vec<ArtifactRecord>,
}

/// One tier's place in the cache.
pub struct Slot {
    pub dir: PathBuf,
}

/// What the cache has for a slot.
pub enum Lookup {
    Hit(Entry),
    Miss,
    /// There was an entry, and it could not be trusted (why); it has been removed.
    Damaged(String),
}

/// What a tier's output depends on, as one digest; `None` when the backend says its output
/// cannot be reused.
pub struct KeyParts<'a> {
    pub backend: &'a dyn Backend,
    pub project: &'a Project,
    pub python: &'a InterpreterFacts,
    /// The inputs of every platform the build is for (one, but for a tier built for all
    /// together).
    pub targets: &'a [std::sync::Arc<Inputs>],
    pub source_date: SourceDate,
    pub tags: &'a [String],
    pub strict: bool,
}

/// A build's lines for the shared inputs it takes from one platform's `inputs`; `None` when
/// one is missing (nothing is reused then).
fn input_lines(backend: &dyn Backend, inputs: &Inputs) -> Option<String> {
    let mut text = String::new();
    for input in backend.inputs() {
        let line = match input {
            Input::Sdist => file_digest(inputs.sdist.as_ref()?).ok()?,
            Input::Wheel => file_digest(inputs.wheel()?).ok()?,
            Input::Wheelhouse => {
                let wheelhouse = inputs.wheelhouse.as_ref()?;
                format!(
                    "{} {}",
                    file_digest(&wheelhouse.lock).ok()?,
                    wheelhouse.site.display()
                )
            }
            // The bundle's folder and what it was made from.
            Input::Runtime => {
                let runtime = inputs.runtime.as_ref()?;
                format!("{} {}", runtime.dir.display(), runtime.key())
            }
        };
        text.push_str(&format!("input {} {line}\n", input.name()));
    }
    Some(text)
}

impl Slot {
    pub fn for_tier(cache: &Path, parts: KeyParts<'_>) -> Option<Slot> {
        let fingerprint = parts.backend.fingerprint(parts.project)?;
        let mut text = format!(
            "gradient {} {}\ntier {}\nfingerprint {fingerprint}\n",
            env!("CARGO_PKG_VERSION"),
            this_executable(),
            parts.backend.tier(),
        );
        let python = parts.python;
        text.push_str(&format!(
            "python {} {} {} {}\nsource-date {}\ntags {}\nstrict {}\n",
            python.executable.display(),
            python.full_version(),
            python.abi_tag,
            python.platform_tag,
            parts.source_date.seconds,
            parts.tags.join(","),
            parts.strict
        ));
        if let Some(pyproject) = &parts.project.pyproject {
            text.push_str(&format!("pyproject {}\n", file_digest(pyproject).ok()?));
        }
        // `--entry` changes the default script without changing pyproject.toml.
        if let Some(entry) = &parts.project.config.entry {
            text.push_str(&format!("entry {entry}\n"));
        }
        for inputs in parts.targets {
            text.push_str(&format!(
                "platform {}\n",
                inputs.platform().map_or("unknown", |p| p.oci())
            ));
            text.push_str(&input_lines(parts.backend, inputs)?);
        }
        let key = crate::publish::sha256_hex(text.as_bytes());
        let project = gradient_core::normalize_name(&parts.project.display_name());
        Some(Slot {
            dir: cache.join("tiers").join(format!(
                "{project}-{}-{}",
                parts.backend.tier(),
                &key[..24]
            )),
        })
    }

    /// The entry, when there is one and its description reads.
    pub fn lookup(&self) -> Lookup {
        let path = self.dir.join(ENTRY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => return Lookup::Miss,
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) => match entry
                .records
                .iter()
                .find(|r| !self.dir.join(&r.file).is_file())
            {
                None => Lookup::Hit(entry),
                Some(missing) => self.damaged(format!("`{}` is missing", missing.file)),
            },
            Err(error) => self.damaged(format!("`{}` does not parse: {error}", path.display())),
        }
    }

    /// Remove a damaged entry and say why it was.
    fn damaged(&self, why: String) -> Lookup {
        self.remove();
        Lookup::Damaged(why)
    }

    /// Forget the entry (it was found damaged).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The cached copy of a file of the entry.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Store `files` (published copies, named as in `records`) as this slot's entry, then
    /// remove the oldest entries of the same project and tier beyond [`KEEP`]. The cached
    /// copies take the published files' modification times, so a published file that still
    /// has its copy's size and time is known to be that copy without reading it.
    pub fn store(&self, files: &[PathBuf], entry: &Entry) -> std::io::Result<()> {
        let parent = self.dir.parent().expect("inside the cache");
        std::fs::create_dir_all(parent)?;
        let mut staging = Staged::dir_in(parent, STAGING_PREFIX)?;
        for file in files {
            let name = file.file_name().expect("a file");
            let copy = staging.path().join(name);
            std::fs::copy(file, &copy)?;
            let modified = std::fs::metadata(file)?.modified()?;
            std::fs::File::options()
                .write(true)
                .open(&copy)?
                .set_modified(modified)?;
        }
        let json = serde_json::to_vec_pretty(entry).expect("the entry serialises");
        std::fs::write(staging.path().join(ENTRY_FILE), json)?;
        let _ = std::fs::remove_dir_all(&self.dir);
        staging.persist(&self.dir)?;
        self.prune(parent);
        Ok(())
    }

    /// Rewrite the entry's description (a new smoke result), atomically.
    pub fn update(&self, entry: &Entry) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(entry).expect("the entry serialises");
        crate::publish::write_atomically(&self.dir.join(ENTRY_FILE), &json)
    }

    fn prune(&self, parent: &Path) {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((family, _)) = name.rsplit_once('-') else {
            return;
        };
        let Ok(listing) = std::fs::read_dir(parent) else {
            return;
        };
        let mut siblings: Vec<(std::time::SystemTime, PathBuf)> = listing
            .flatten()
            .filter(|e| {
                let other = e.file_name().to_string_lossy().into_owned();
                other.rsplit_once('-').is_some_and(|(f, _)| f == family)
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        siblings.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (_, old) in siblings.into_iter().skip(KEEP) {
            if old != self.dir {
                let _ = std::fs::remove_dir_all(old);
            }
        }
    }
}

/// Whether some entry of `tier` in the cache holds `file` with digest `sha256`.
pub fn holds(cache: &Path, tier: gradient_core::Tier, file: &str, sha256: &str) -> bool {
    let Ok(listing) = std::fs::read_dir(cache.join("tiers")) else {
        return false;
    };
    listing.flatten().any(|dir| {
        let name = dir.file_name().to_string_lossy().into_owned();
        let entry = || -> Option<Entry> {
            serde_json::from_slice(&std::fs::read(dir.path().join(ENTRY_FILE)).ok()?).ok()
        };
        name.contains(&format!("-{tier}-"))
            && entry().is_some_and(|e| {
                e.records.iter().any(|r| {
                    r.file == file && r.sha256 == sha256 && dir.path().join(file).is_file()
                })
            })
    })
}

/// Whether `published` is the cached copy `cached`: same size and modification time.
pub fn same_file(published: &Path, cached: &Path) -> bool {
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    };
    matches!((stamp(published), stamp(cached)), (Some(a), Some(b)) if a == b)
}

/// This gradient executable, by size and time: a rebuilt gradient does not reuse the
/// tiers (or the reference venv's findings) of another build of the same version.
pub(crate) fn this_executable() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| {
            let modified = m.modified()?;
            let since = modified
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(format!("{} {}", m.len(), since.as_nanos()))
        })
        .unwrap_or_default()
}
