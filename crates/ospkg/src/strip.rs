//! Stripped copies of compiled code, as distributions ship it: `strip --strip-unneeded` on
//! every ELF file (binutils' tool, deterministic for the same input). The runtime bundle's
//! stripped copy is made once and kept in the cache beside the packages' other state.

use crate::{io, OsPkgError};
use gradient_core::RuntimeFiles;
use gradient_python::integrity::{self, State};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The name prefix of a stripped copy being made in `cache/ospkg/stripped/`.
const STAGING_PREFIX: &str = ".stripping-";

/// Where this crate stages cache entries (folder, name prefix). Stripped copies: every dot
/// entry there, the staging
/// folders (`STAGING_PREFIX…`) and damaged entries put aside to be removed
/// (`.KEY….discarded-PID`, see [`gradient_python::integrity::discard`]).
pub fn staging_areas(cache: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (cache.join("ospkg").join("stripped"), "."),
        // The deb's cached data parts, written through staging files.
        (
            cache.join("ospkg").join("deb-data"),
            crate::deb::DATA_STAGING_PREFIX,
        ),
    ]
}

/// A stripped copy of the runtime bundle, made once per bundle in
/// `cache/ospkg/stripped/KEY/bundle`, sealed with the digest of every file
/// ([`gradient_python::integrity`]): the packages copy it as it is, so a damaged copy is
/// said and made again. Without `strip` on the host, the bundle itself (and a warning).
pub async fn stripped_runtime(runtime: &RuntimeFiles, cache: &Path) -> Result<PathBuf, OsPkgError> {
    let bundle = &runtime.dir;
    if !on_path("strip") {
        tracing::warn!("`strip` (binutils) is not installed: the package's compiled code keeps its symbols (lintian: unstripped-binary-or-object)");
        return Ok(bundle.to_path_buf());
    }
    let entry = cache.join("ospkg").join("stripped").join(runtime.key());
    let done = entry.join("bundle");
    match integrity::check(&entry) {
        State::Intact => return Ok(done),
        State::Unsealed => {}
        damaged => tracing::warn!(
            "the stripped runtime `{}` is damaged: {damaged}; making it again",
            entry.display()
        ),
    }
    let parent = entry.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let staging = gradient_python::staging::Staged::dir_in(parent, STAGING_PREFIX)
        .map_err(io("create", parent))?;
    let copy = staging.path().join("bundle");
    copy_tree(bundle, &copy)?;
    strip_tree(&copy).await?;
    integrity::seal(staging.path()).map_err(io("record the digests of", staging.path()))?;
    integrity::settle(staging, &entry).map_err(io("move into place", &entry))?;
    Ok(done)
}

/// The stripped copy for the bill of materials of a package, which lists the libraries and
/// copies nothing: a made copy is taken at a quick look (its digests unchecked, which costs
/// hashing some 30 MB on a run that may reuse every tier), else it is made now.
pub async fn stripped_runtime_to_list(
    runtime: &RuntimeFiles,
    cache: &Path,
) -> Result<PathBuf, OsPkgError> {
    let entry = cache.join("ospkg").join("stripped").join(runtime.key());
    if on_path("strip") && integrity::is_sealed(&entry) {
        return Ok(entry.join("bundle"));
    }
    stripped_runtime(runtime, cache).await
}

/// Strip every ELF file under `dir` in place (nothing when `strip` is missing).
pub async fn strip_tree(dir: &Path) -> Result<(), OsPkgError> {
    strip_files(&elf_files(dir)?).await
}

/// Strip `objects` in place (nothing when `strip` is missing).
pub async fn strip_files(objects: &[PathBuf]) -> Result<(), OsPkgError> {
    if objects.is_empty() || !on_path("strip") {
        return Ok(());
    }
    let mut command = Command::new("strip");
    command.arg("--strip-unneeded").args(objects);
    // Killed with the run, not left writing into the staging folder the run removes.
    let output = gradient_python::ProcessGroup::output_of(&mut command)
        .await
        .map_err(io("run strip on", &objects[0]))?;
    if !output.status.success() {
        return Err(OsPkgError::Strip {
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Copy a tree, keeping symlinks as links and permission bits.
fn copy_tree(from: &Path, to: &Path) -> Result<(), OsPkgError> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(|e| io("read", from)(e.into()))?;
        let target = to.join(entry.path().strip_prefix(from).expect("inside the walk"));
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io("create", &target))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io("read", entry.path()))?;
            std::os::unix::fs::symlink(link, &target).map_err(io("link", &target))?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io("copy", entry.path()))?;
        }
    }
    Ok(())
}

/// The ELF files under `dir`, in name order.
pub fn elf_files(dir: &Path) -> Result<Vec<PathBuf>, OsPkgError> {
    let mut objects = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| io("read", dir)(e.into()))?;
        if entry.file_type().is_file() && is_elf(entry.path()) {
            objects.push(entry.into_path());
        }
    }
    Ok(objects)
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// Whether `tool` is a file in one of PATH's folders.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}
