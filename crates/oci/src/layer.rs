//! Image layers: a deterministic tar of entries, gzipped once and kept in a cache keyed by
//! the tar's own digest, so an unchanged layer is reused without compressing it again.
//!
//! ```text
//!  entries ─► tar bytes (sorted, fixed time and owners) ─► diff_id = sha256(tar)
//!          ─► cache/oci/v3/layers/<diff_id>/layer.tar.gz  (gzip, no name or time)
//!                                        /digest        (sha256 of the gzip)
//! ```
//! A cached layer is checked against its recorded digest before use; a damaged one is
//! made again. Concurrent builders of the same layer take turns on a lock file.
//!
//! A layer made only from cached inputs (the runtime bundle, the installed dependencies)
//! is also found by a *recipe*: a text naming those inputs, whose hash points at the
//! layer's `diff_id`. A later build then reuses the layer without reading or assembling
//! its files (`cache/oci/v3/recipes/<sha256 of the recipe>`).

use crate::{io, OciError};
use gradient_archive::{write_tar, Entry};
use gradient_python::staging::Staged;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The media types of the blobs gradient writes.
pub const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const PLAIN_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// gzip level of layers: a balance of size and time, fixed so the bytes are too.
const LEVEL: u32 = 6;

/// A layer blob ready to be written into an image.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The blob's file (compressed, or a base image's blob as it came).
    pub path: PathBuf,
    /// `sha256:…` of the blob.
    pub digest: String,
    pub size: u64,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub media_type: String,
    /// Whether it came from the cache rather than being compressed in this run.
    pub reused: bool,
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The layer holding `entries` (sorted by the caller), owned as `owner` says, with every
/// time set to `mtime`: from the cache when an identical layer was made before.
pub fn make_layer(
    entries: &[Entry],
    mtime: u64,
    owner: gradient_archive::Owner<'_>,
    cache: &Path,
) -> Result<Layer, OciError> {
    let tar = write_tar(Vec::new(), entries, mtime, owner).map_err(|source| OciError::Io {
        action: "assemble a layer in",
        path: cache.to_path_buf(),
        source,
    })?;
    let diff_id = digest_of(&tar);
    let dir = layer_dir(cache, &diff_id);
    if let Some(layer) = cached(&dir, &diff_id) {
        return Ok(layer);
    }
    let parent = dir.parent().expect("a layer folder has a parent");
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    // Another builder may have made it while this one waited.
    if let Some(layer) = cached(&dir, &diff_id) {
        return Ok(layer);
    }
    let mut staging = Staged::dir_in(parent, ".layer-").map_err(io("create", parent))?;
    let blob = staging.path().join("layer.tar.gz");
    let compressed = gradient_archive::gzip(&tar, LEVEL);
    let digest = digest_of(&compressed);
    std::fs::write(&blob, &compressed).map_err(io("write", &blob))?;
    std::fs::write(staging.path().join("digest"), &digest).map_err(io("write", &blob))?;
    if dir.exists() {
        // Damaged: replaced as a whole.
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    }
    staging.persist(&dir).map_err(io("write", &dir))?;
    Ok(Layer {
        path: dir.join("layer.tar.gz"),
        digest,
        size: compressed.len() as u64,
        diff_id,
        media_type: GZIP_LAYER.to_string(),
        reused: false,
    })
}

/// Where layers and recipes are kept. Versioned: a layer's bytes for a given tar change
/// with the compressor, and a reused layer must give the same bytes as a new one.
fn oci_cache(cache: &Path) -> PathBuf {
    cache.join("oci").join(format!("v{LAYER_FORMAT}"))
}

/// The folder of the layer whose uncompressed tar has `diff_id`.
fn layer_dir(cache: &Path, diff_id: &str) -> PathBuf {
    oci_cache(cache)
        .join("layers")
        .join(diff_id.trim_start_matches("sha256:"))
}

/// Where layers and recipes are staged (folder, name prefix).
pub fn staging_areas(cache: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (oci_cache(cache).join("layers"), ".layer-"),
        (oci_cache(cache).join("recipes"), ".tmp"),
    ]
}

/// Bumped whenever the compressed bytes of a layer would change for the same tar, or what a
/// recipe makes changes.
const LAYER_FORMAT: u32 = 3;

/// The layer `recipe` made before, if it is still cached and whole.
pub fn from_recipe(recipe: &str, cache: &Path) -> Option<Layer> {
    let diff_id = std::fs::read_to_string(recipe_path(recipe, cache)).ok()?;
    cached(&layer_dir(cache, &diff_id), &diff_id)
}

/// Whether the layer `recipe` makes is cached, by a quick look (its digest unchecked).
pub fn recipe_known(recipe: &str, cache: &Path) -> bool {
    std::fs::read_to_string(recipe_path(recipe, cache))
        .is_ok_and(|diff_id| layer_dir(cache, &diff_id).join("digest").is_file())
}

/// Note that `recipe` makes `layer`. A failure to write only costs a later rebuild.
pub fn remember_recipe(recipe: &str, layer: &Layer, cache: &Path) {
    let path = recipe_path(recipe, cache);
    let dir = path.parent().expect("a recipe file has a folder");
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let mut temp = Staged::file_in(dir, ".tmp")?;
        std::io::Write::write_all(&mut temp.file(), layer.diff_id.as_bytes())?;
        temp.persist(&path)
    });
    if let Err(error) = written {
        tracing::debug!("could not note the recipe of a layer: {error}");
    }
}

fn recipe_path(recipe: &str, cache: &Path) -> PathBuf {
    let key = hex::encode(Sha256::digest(recipe.as_bytes()));
    oci_cache(cache).join("recipes").join(&key[..32])
}

/// The cached layer in `dir`, if it is there and its bytes match its recorded digest.
fn cached(dir: &Path, diff_id: &str) -> Option<Layer> {
    let digest = std::fs::read_to_string(dir.join("digest")).ok()?;
    let path = dir.join("layer.tar.gz");
    let bytes = std::fs::read(&path).ok()?;
    if digest_of(&bytes) != digest {
        tracing::warn!("cached layer {} is damaged; making it again", dir.display());
        return None;
    }
    Some(Layer {
        path,
        digest,
        size: bytes.len() as u64,
        diff_id: diff_id.to_string(),
        media_type: GZIP_LAYER.to_string(),
        reused: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_archive::EntryKind;

    fn file(path: &str, data: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(data.as_bytes().to_vec()),
            mode: 0o644,
        }
    }

    #[test]
    fn the_same_entries_give_the_same_layer_from_the_cache_and_damage_is_repaired() {
        let cache = tempfile::tempdir().unwrap();
        let entries = [file("a.txt", "one"), file("b/c.txt", "two")];
        let root = |_: &Entry| (0, 0);
        let first = make_layer(&entries, 1_000, &root, cache.path()).unwrap();
        assert!(!first.reused);
        let again = make_layer(&entries, 1_000, &root, cache.path()).unwrap();
        assert!(again.reused);
        assert_eq!(first.digest, again.digest);
        assert_eq!(first.diff_id, again.diff_id);

        // Another time gives another layer.
        let later = make_layer(&entries, 2_000, &root, cache.path()).unwrap();
        assert_ne!(later.diff_id, first.diff_id);

        // A damaged blob is detected by its digest and made again.
        std::fs::write(&first.path, b"garbage").unwrap();
        let repaired = make_layer(&entries, 1_000, &root, cache.path()).unwrap();
        assert!(!repaired.reused);
        assert_eq!(repaired.digest, first.digest);
        assert_eq!(
            digest_of(&std::fs::read(&repaired.path).unwrap()),
            first.digest
        );
    }

    #[test]
    fn a_remembered_recipe_finds_its_layer_until_the_layer_is_damaged() {
        let cache = tempfile::tempdir().unwrap();
        let recipe = "runtime\n/cache/runtimes/abc 42 1.0\nusr/local";
        assert!(!recipe_known(recipe, cache.path()));
        assert!(from_recipe(recipe, cache.path()).is_none());

        let made = make_layer(&[file("a.txt", "one")], 1_000, &|_| (0, 0), cache.path()).unwrap();
        remember_recipe(recipe, &made, cache.path());
        assert!(recipe_known(recipe, cache.path()));
        let found = from_recipe(recipe, cache.path()).expect("found by its recipe");
        assert!(found.reused);
        assert_eq!(
            (found.digest.as_str(), found.diff_id.as_str()),
            (made.digest.as_str(), made.diff_id.as_str())
        );
        assert!(from_recipe("another recipe", cache.path()).is_none());

        // A damaged blob is not handed out: the caller makes the layer again.
        std::fs::write(&made.path, b"garbage").unwrap();
        assert!(from_recipe(recipe, cache.path()).is_none());
    }
}
