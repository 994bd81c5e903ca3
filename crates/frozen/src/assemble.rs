//! Writing the executable: launcher, runtime part (cached), app part, trailer.

use crate::{io, FrozenError};
use gradient_archive::{write_tar_gz, Entry, EntryKind};
use gradient_core::{
    normalize_name, AppScripts, AppWheel, BuildContext, RuntimeFiles, FALLBACK_EPOCH,
};
use gradient_launcher::{write_trailer, Launch, Trailer};
use gradient_python::integrity::{self, State};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the bundle sits inside the extraction folder.
const PYTHON_DIR: &str = "python";
/// Where legacy (setuptools `scripts=`) scripts sit inside the extraction folder.
const LEGACY_DIR: &str = "scripts";

/// `NAME-VERSION-PLATFORM` (`sampleapp-1.0-linux-x86_64`: the architecture keeps its own
/// underscore), from the normalised name: what either engine writes and the plan lists.
pub fn file_name(name: &str, version: &str, platform: gradient_core::Platform) -> String {
    format!("{name}-{version}-linux-{}", platform.machine())
}

/// A built frozen executable.
#[derive(Clone, Debug)]
pub struct Frozen {
    pub path: PathBuf,
    /// None for a multi-call executable without a default.
    pub default_script: Option<String>,
}

/// Build `NAME-VERSION-PLATFORM` in the build's work folder.
pub async fn assemble(
    cx: &BuildContext,
    app: &AppWheel,
    dependencies: &Path,
    runtime: &RuntimeFiles,
) -> Result<Frozen, FrozenError> {
    let (python, work_dir) = (&cx.python, &cx.work_dir);
    let info = &app.info;
    let name = normalize_name(app.name());
    let AppScripts {
        scripts,
        default: default_script,
    } = app.scripts()?.clone();

    // The app part: site-packages (dependencies and the app, compiled) and launch.txt.
    let app_root = work_dir.join("app");
    let site = app_root.join(PYTHON_DIR).join(&runtime.site_packages);
    gradient_python::wheelhouse::copy_site(dependencies, &site)?;
    gradient_wheel::install_wheel_files(&app.path, &site)?;
    gradient_python::runtime::compile_tree(&python.executable, &site, &app_root, &[]).await?;
    // Legacy scripts as the wheel has them, under scripts/, for the launcher to run.
    let mut scripts: Vec<(String, String)> = scripts.into_iter().collect();
    let mut legacy_entries = Vec::new();
    for (name, data) in &info.legacy_scripts {
        let path = format!("{LEGACY_DIR}/{name}");
        scripts.push((
            name.clone(),
            Launch::legacy_target(&path, gradient_wheel::is_python_script(data)),
        ));
        legacy_entries.push(Entry {
            path,
            kind: EntryKind::File(data.clone()),
            mode: 0o755,
        });
    }
    scripts.sort();
    let launch = Launch {
        python: format!("{PYTHON_DIR}/{}", runtime.python),
        default: default_script.clone(),
        scripts,
    };
    let mut app_entries = gradient_archive::tree_entries(&app_root, "")?;
    if !legacy_entries.is_empty() {
        app_entries.push(Entry {
            path: LEGACY_DIR.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
        });
        app_entries.extend(legacy_entries);
    }
    app_entries.push(Entry {
        path: "launch.txt".into(),
        kind: EntryKind::File(launch.render().into_bytes()),
        mode: 0o644,
    });
    app_entries.sort_by(|a, b| a.path.cmp(&b.path));
    let app_part = work_dir.join("app.tar.gz");
    write_tar_gz(&app_part, &app_entries, cx.source_date.seconds)?;

    let runtime_part = runtime_part(runtime, &cx.cache_dir)?;
    let platform = cx.inputs.platform().ok_or(FrozenError::NoLauncher {
        machine: std::env::consts::ARCH.to_string(),
    })?;
    let launcher = crate::launcher(platform.machine()).ok_or(FrozenError::NoLauncher {
        machine: platform.machine().to_string(),
    })?;
    let path = work_dir.join(file_name(&name, &info.metadata.version, platform));
    write_executable(&path, launcher, &name, &[&runtime_part, &app_part])?;
    Ok(Frozen {
        path,
        default_script,
    })
}

/// The name prefix of a runtime part being made in `cache/frozen/`.
const STAGING_PREFIX: &str = ".runtime-";

/// Where runtime parts are staged (folder, name prefix): every dot entry there, the staging
/// folders (`.runtime-…`) and damaged entries put aside to be removed
/// (`.KEY….discarded-PID`, see [`gradient_python::integrity::discard`]).
pub fn staging_areas(cache: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![(cache.join("frozen"), ".")]
}

/// Bumped whenever the bytes of a cached runtime part would change for the same bundle, or
/// how it is kept (3: in a sealed folder of its own).
const RUNTIME_PART_FORMAT: u32 = 3;
const RUNTIME_PART: &str = "runtime.tar.gz";

/// The runtime bundle as a gzipped tar under `python/`, made once per bundle and kept in
/// `cache/frozen/` under the bundle's key, in a folder sealed with its digest
/// ([`gradient_python::integrity`]): every executable copies it as it is, so a damaged copy
/// is said and made again. Its times are fixed (not the project's source date) so that
/// reusing it gives the same bytes as making it afresh. The name carries
/// [`RUNTIME_PART_FORMAT`].
pub(crate) fn runtime_part(runtime: &RuntimeFiles, cache: &Path) -> Result<PathBuf, FrozenError> {
    let entry = runtime_part_entry(runtime, cache);
    let cached = entry.join(RUNTIME_PART);
    match integrity::check(&entry) {
        State::Intact => return Ok(cached),
        State::Unsealed => {}
        damaged => tracing::warn!(
            "the packed runtime part `{}` is damaged: {damaged}; packing it again",
            entry.display()
        ),
    }
    let mut entries = gradient_archive::tree_entries(&runtime.dir, PYTHON_DIR)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let parent = entry.parent().expect("a cache entry has a folder");
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let staging = gradient_python::staging::Staged::dir_in(parent, STAGING_PREFIX)
        .map_err(io("create", parent))?;
    write_tar_gz(&staging.path().join(RUNTIME_PART), &entries, FALLBACK_EPOCH)?;
    integrity::seal(staging.path()).map_err(io("record the digest of", staging.path()))?;
    integrity::settle(staging, &entry).map_err(io("move into place", &entry))?;
    Ok(cached)
}

fn runtime_part_entry(runtime: &RuntimeFiles, cache: &Path) -> PathBuf {
    cache
        .join("frozen")
        .join(format!("{}.runtime.v{RUNTIME_PART_FORMAT}", runtime.key()))
}

/// Whether the runtime's part is made already (a quick look, its digest unchecked).
pub(crate) fn runtime_part_cached(runtime: &RuntimeFiles, cache: &Path) -> bool {
    integrity::is_sealed(&runtime_part_entry(runtime, cache))
}

/// launcher ‖ parts ‖ trailer, executable. The trailer's digest covers every byte of the
/// file but its own (see [`Trailer`]).
fn write_executable(
    path: &Path,
    launcher: &[u8],
    name: &str,
    parts: &[&Path],
) -> Result<(), FrozenError> {
    let mut file = std::fs::File::create(path).map_err(io("create", path))?;
    file.write_all(launcher).map_err(io("write", path))?;
    let mut hasher = Sha256::new();
    hasher.update(launcher);
    let mut length = 0u64;
    for part in parts {
        let bytes = std::fs::read(part).map_err(io("read", part))?;
        hasher.update(&bytes);
        length += bytes.len() as u64;
        file.write_all(&bytes).map_err(io("write", path))?;
    }
    let mut trailer = Trailer {
        offset: launcher.len() as u64,
        length,
        sha256: [0; 32],
        name: name.chars().take(64).collect(),
    };
    hasher.update(trailer.digested_bytes());
    trailer.sha256 = hasher.finalize().into();
    file.write_all(&write_trailer(&trailer))
        .map_err(io("write", path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io("set permissions on", path))
}
