//! What goes into each layer of an image, as archive entries.
//!
//! ```text
//!  base (scratch only)  gradient-sandbox's scratch base: the platform's glibc + loader
//!                       (the host's, or the target's libc-only root's), users, /tmp
//!  runtime              the runtime bundle under /usr/local          (changes with Python)
//!  dependencies         the wheelhouse in site-packages, compiled    (changes with the lock)
//!  app                  the wheel in site-packages, compiled, and one
//!                       console script per entry point in bin/       (changes every release)
//! ```

use crate::OciError;
use gradient_archive::{folder_entries, tree_entries, Entry, EntryKind};
use std::collections::BTreeMap;
use std::path::Path;

/// The runtime bundle's place in an image on a scratch base.
pub const RUNTIME_PREFIX: &str = "usr/local";

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

/// The runtime bundle under [`RUNTIME_PREFIX`], with its parent folders.
pub fn runtime(bundle: &Path) -> Result<Vec<Entry>, OciError> {
    let mut entries = folder_entries(RUNTIME_PREFIX);
    entries.extend(tree_entries(bundle, RUNTIME_PREFIX)?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The interpreter that byte-compiles a layer's Python files: the build interpreter, or,
/// for an image of another platform whose CPython is not the build interpreter's X.Y, that
/// platform's own, run under qemu-user with its C library from `loader_prefix`.
#[derive(Clone, Copy, Debug)]
pub struct Compiler<'a> {
    pub python: &'a Path,
    pub loader_prefix: Option<&'a Path>,
}

/// A site-packages layer: `fill` puts files into a staging copy of `placement.site`, which
/// is then byte-compiled by `compiler` for the paths it has in the image. `scripts` (name →
/// file content) go into `placement.bin`.
pub async fn site_layer(
    staging: &Path,
    placement: &Placement,
    compiler: Compiler<'_>,
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
    gradient_python::runtime::compile_tree_in(
        compiler.python,
        compiler.loader_prefix,
        &site,
        staging,
        &[],
    )
    .await?;
    let mut entries = tree_entries(staging, "")?;
    if !scripts.is_empty() {
        entries.extend(folder_entries(&placement.bin));
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
