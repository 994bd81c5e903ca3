//! The runtime bundle: the build interpreter's CPython made relocatable, shared by the
//! frozen, container and OS-package tiers.
//!
//! ```text
//!  sys.base_prefix ─► bin/pythonX.Y, lib/libpythonX.Y.so.*, lib/pythonX.Y (stdlib minus
//!                     EXCLUDED_STDLIB, lib-dynload), lib/<closure of DT_NEEDED>, empty
//!                     site-packages ─► search paths rewritten to $ORIGIN ─► byte-compiled
//! ```
//! Libraries are resolved as the dynamic loader would (the object's own search path, the
//! loader cache, the default folders). The glibc family stays out: the target's glibc must
//! be at least the highest `GLIBC_x.y` any bundled object references. The interpreter's
//! search path becomes a DT_RPATH of `$ORIGIN/../lib` (inserted when it has none, as
//! Debian's python3.X has none: [`elf::set_search_path`]), which also serves bundled
//! libraries and modules that have none of their own; those that have one get an
//! `$ORIGIN`-relative one instead. So nothing is loaded from a host path and no
//! LD_LIBRARY_PATH is set for the app's children to inherit. Cached per interpreter and
//! settings, made in a staging folder, sealed with the digest of every file
//! ([`crate::integrity`]) and renamed into place; checked against those digests when reused.
//!
//! Another machine's bundle ([`build_foreign_runtime`]: Debian's arm64 CPython, from
//! [`crate::target_python`]) goes the same way with another [`Sysroot`]: names are resolved
//! only inside the target's root, every object must be for the target's machine, and the
//! bundled interpreter byte-compiles under qemu-user (`QEMU_LD_PREFIX` at the root). That
//! costs ~12 s more than a host interpreter of the same X.Y would (whose `.pyc` files are
//! byte-identical here), and keeps the bytes exactly what the target's own interpreter
//! makes, whatever patch release the host has.

use crate::elf;
use crate::integrity::{self, State};
use crate::process::run_checked;
use crate::staging::Staged;
use crate::PythonError;
use gradient_core::{InterpreterFacts, Platform};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Parts of the standard library an application never needs. `[tool.gradient.runtime]
/// exclude` replaces this list.
pub const EXCLUDED_STDLIB: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "turtle.py",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "__phello__",
    "_tkinter",
    "_test",
    "_xxtestfuzz",
    "xxlimited",
    "_ctypes_test",
    "ctypes/test",
    "distutils/tests",
    "unittest/test",
];

/// What of the standard library a bundle carries: `[tool.gradient.runtime]`'s `exclude`
/// (else [`EXCLUDED_STDLIB`]) and `stdlib-sources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdlibChoice {
    /// Top-level modules and packages left out.
    pub exclude: Vec<String>,
    /// Whether the zipped standard library holds each module's source beside its bytecode
    /// (tracebacks show stdlib lines; `inspect.getsource` and coverage work), as a venv's
    /// interpreter has it.
    pub sources: bool,
}

impl StdlibChoice {
    pub fn of(config: &gradient_core::RuntimeConfig) -> StdlibChoice {
        StdlibChoice {
            exclude: config
                .exclude
                .clone()
                .unwrap_or_else(|| EXCLUDED_STDLIB.iter().map(|s| s.to_string()).collect()),
            sources: config.stdlib_sources.unwrap_or(STDLIB_SOURCES_BY_DEFAULT),
        }
    }
}

/// Whether bundles carry the standard library's sources unless the project says otherwise.
/// No: measured on the sample's frozen executable, sources cost 17% in size (13.7 → 15.9 MB)
/// and 9% of a warm start's instructions (243 → 265 million: zipimport reads every entry of
/// the zip's directory at start), more than the frozen tier's start-up budget allows (see
/// docs/tiers.md).
pub const STDLIB_SOURCES_BY_DEFAULT: bool = false;

/// The C library family: never bundled, the target's own is used.
pub(crate) const GLIBC_FAMILY: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libresolv.so.2",
    "libnsl.so.1",
    "libanl.so.1",
];

/// Where a bundle's objects come from and which machine they must be for: the host as its
/// own loader sees it (the loader cache, then the default folders), or another machine's
/// root folder (Debian's arm64 CPython, [`crate::target_python`]), where a name is looked
/// up only inside the root, never on the host. Bundling is one path for both; this value
/// is what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysroot {
    /// `/` for the host; absolute search paths and default folders are taken inside it.
    root: PathBuf,
    /// `platform.machine()` there (`aarch64`): every bundled object must be built for it.
    machine: &'static str,
    /// The multiarch folder of the default search (`aarch64-linux-gnu`).
    triplet: &'static str,
    /// Set as `QEMU_LD_PREFIX` when the bundled interpreter runs (to byte-compile): where
    /// qemu-user finds the loader and the C library. `None` on the host.
    loader_prefix: Option<PathBuf>,
}

impl Sysroot {
    /// The host, as today: its loader cache and default folders.
    pub fn host() -> Sysroot {
        let machine = std::env::consts::ARCH;
        let arch = crate::target_python::DEBIAN_ARCHES
            .iter()
            .find(|a| a.machine == machine);
        Sysroot {
            root: PathBuf::from("/"),
            machine: arch.map_or(machine, |a| a.machine),
            triplet: arch.map_or("x86_64-linux-gnu", |a| a.triplet),
            loader_prefix: None,
        }
    }

    /// The root of Debian's CPython for another architecture.
    pub fn of(target: &crate::target_python::DebianPython) -> Sysroot {
        Sysroot {
            root: target.root.clone(),
            machine: target.arch.machine,
            triplet: target.arch.triplet,
            loader_prefix: Some(target.root.clone()),
        }
    }

    /// The root of another system of a Debian architecture gradient knows, named by its
    /// machine (`aarch64`), as a build for that platform is handed it: its libraries are
    /// looked up there, never on the host. `None` for a machine gradient has no layout for.
    pub fn of_machine(root: &Path, machine: &str) -> Option<Sysroot> {
        let arch = crate::target_python::DEBIAN_ARCHES
            .iter()
            .find(|a| a.machine == machine)?;
        Some(Sysroot {
            root: root.to_path_buf(),
            machine: arch.machine,
            triplet: arch.triplet,
            loader_prefix: Some(root.to_path_buf()),
        })
    }

    fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where the loader would find `name` for an object in `origin` (a path on this host)
    /// with `search_path`: that path (`$ORIGIN` is `origin`, an absolute folder is taken
    /// inside the root), the host's loader cache (host only: a root has none), then the
    /// default folders inside the root.
    fn resolve(&self, name: &str, search_path: &[String], origin: &Path) -> Option<PathBuf> {
        let inside = |dir: &str| self.root.join(dir.trim_start_matches('/'));
        let from_search_path = search_path.iter().map(|dir| {
            if dir.starts_with("$ORIGIN") || dir.starts_with("${ORIGIN}") {
                PathBuf::from(
                    dir.replace("$ORIGIN", &origin.to_string_lossy())
                        .replace("${ORIGIN}", &origin.to_string_lossy()),
                )
            } else {
                inside(dir)
            }
        });
        let cached = self
            .is_host()
            .then(|| loader_cache().get(name).cloned())
            .flatten();
        let defaults = [
            format!("/lib/{}", self.triplet),
            format!("/usr/lib/{}", self.triplet),
            "/lib64".into(),
            "/usr/lib64".into(),
            "/lib".into(),
            "/usr/lib".into(),
        ];
        from_search_path
            .map(|dir| dir.join(name))
            .chain(cached)
            .chain(defaults.iter().map(|dir| inside(dir).join(name)))
            .find(|p| p.is_file())
    }
}

pub use crate::runtime_download::{downloads_folder, fetch_runtime_archive, DOWNLOAD_LIMIT};

/// Bumped whenever what goes into a bundle changes.
const FORMAT: &str = "runtime-9";
const MARKER: &str = "gradient-runtime.json";

/// A ready runtime bundle.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Runtime {
    /// The bundle's root: `bin/`, `lib/`.
    pub dir: PathBuf,
    /// The interpreter, relative to `dir` (`bin/python3.11`).
    pub python: String,
    /// `lib/pythonX.Y/site-packages`, relative to `dir`.
    pub site_packages: String,
    /// The oldest glibc that runs it (`2.34`).
    pub glibc: Option<String>,
    /// Shared libraries bundled from the host, by soname.
    pub libraries: Vec<String>,
    /// Libraries an object needs that were found nowhere: `(library, needed by)`.
    pub missing: Vec<(String, String)>,
    /// Where each bundled library came from on the host, with its size and modification
    /// time then: a cached bundle whose host library has changed since (a security update
    /// of zlib) is made again rather than shipping the old copy.
    #[serde(default)]
    pub sources: Vec<(PathBuf, String)>,
    #[serde(skip)]
    pub reused: bool,
}

impl Runtime {
    /// A digest of what the bundle holds and was made from (its marker's fields): the
    /// same bundle made again from a changed host library gets another one.
    pub fn identity(&self) -> String {
        let marker = serde_json::to_vec(self).expect("runtime serialises");
        hex::encode(Sha256::digest(&marker))
    }

    /// Whether every host library the bundle copied is still as it was then.
    fn sources_unchanged(&self) -> bool {
        // A marker from before sources were recorded cannot tell: made again, once.
        if self.sources.len() != self.libraries.len() {
            return false;
        }
        self.sources
            .iter()
            .all(|(path, stamp)| file_stamp(path).as_deref() == Some(stamp.as_str()))
    }
}

/// A file's size and modification time, as text (following symbolic links).
fn file_stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!("{} {:?}", meta.len(), meta.modified().ok()?))
}

/// Why a runtime could not be bundled.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the runtime archive `{}` does not exist", path.display())]
    ArchiveMissing { path: PathBuf },
    #[error("the runtime archive `{}` cannot be read: {reason}", path.display())]
    ArchiveCorrupt { path: PathBuf, reason: String },
    #[error("the runtime archive `{}` holds a CPython for {found}, and this build is for {wanted}", path.display())]
    ArchiveOtherPlatform {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("the runtime archive `{}` holds CPython {found}, but the build interpreter is {wanted}: the dependencies and bytecode are made for the latter", path.display())]
    ArchiveOtherVersion {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("the runtime archive `{}` is for {platform} and checked, but bundling another platform's archive is not part of the build yet", path.display())]
    ArchiveForeign { path: PathBuf, platform: Platform },
    #[error("the runtime archive at {url} was not downloaded: {reason}")]
    DownloadFailed { url: String, reason: String },
    #[error("the runtime archive at {url} is not the one named: its sha256 is {actual}, and [tool.gradient.runtime] expects {expected}; nothing was kept")]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("a runtime archive cannot be downloaded from there: {reason}")]
    DownloadRefused { reason: String },
    #[error("`{}` cannot be bundled: {reason}", python.display())]
    Unsupported { python: PathBuf, reason: String },
    #[error("{module} needs {library}, which is not on this machine")]
    MissingLibrary { library: String, module: String },
    #[error("`{}` is built for {found}, and this bundle is for {wanted}", path.display())]
    OtherMachine {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Python(#[from] PythonError),
}

impl gradient_core::Hint for RuntimeError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            RuntimeError::ArchiveMissing { .. } => "fix `runtime` in [tool.gradient] (relative to the project folder), or remove it to bundle the build interpreter".into(),
            RuntimeError::ArchiveCorrupt { .. } => "it must be a .tar.gz of a relocatable CPython (with bin/pythonX.Y inside); download it again".into(),
            RuntimeError::ArchiveOtherPlatform { wanted, .. } => format!("use an archive built for {wanted}"),
            RuntimeError::ArchiveOtherVersion { found, wanted, .. } => format!("build with --python {found}, or use an archive of CPython {wanted}"),
            RuntimeError::ArchiveForeign { .. } => "build for the host's platform, or leave the other platform's entry in [tool.gradient.runtime.platforms] for when it is".into(),
            RuntimeError::DownloadFailed { .. } => "check the URL and the network, then build again; the download starts over".into(),
            RuntimeError::DigestMismatch { .. } => "check that `sha256` is the digest published with that archive (the file may have been replaced, or the download tampered with)".into(),
            RuntimeError::DownloadRefused { .. } => "use an https URL without credentials".into(),
            RuntimeError::Unsupported { .. } => "use a 64-bit little-endian x86_64 or aarch64 CPython (pyenv's, Debian's, or a relocatable build)".into(),
            RuntimeError::MissingLibrary { .. } => "install the package that provides it, or leave the module out with [tool.gradient.runtime] exclude".into(),
            RuntimeError::OtherMachine { wanted, .. } => format!("every object of a bundle for {wanted} must be built for {wanted}: remove the stray file, or make the target's root again"),
            RuntimeError::Io { .. } => return None,
            RuntimeError::Python(error) => return error.hint(),
        })
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_path_buf();
    move |source| RuntimeError::Io {
        action,
        path,
        source,
    }
}

/// The bundle for `python`, made first if needed. With `strict`, a library found nowhere
/// is an error; otherwise it is listed in [`Runtime::missing`].
pub async fn build_runtime(
    python: &InterpreterFacts,
    stdlib: &StdlibChoice,
    strict: bool,
    cache_root: &Path,
) -> Result<Runtime, RuntimeError> {
    build_runtime_in(python, &Sysroot::host(), stdlib, strict, cache_root).await
}

/// The bundle of Debian's CPython for another machine (`target`, from
/// [`crate::target_python::debian_python_root`]), made first if needed: probed, bundled
/// and byte-compiled under qemu-user, its libraries taken from the root alone, cached
/// under its own key and sealed as the host's is. The target's glibc is left out, as the
/// host's is from a host bundle.
pub async fn build_foreign_runtime(
    target: &crate::target_python::DebianPython,
    stdlib: &StdlibChoice,
    strict: bool,
    cache_root: &Path,
) -> Result<Runtime, RuntimeError> {
    let python = crate::interpreter::foreign_interpreter(target, cache_root).await?;
    build_runtime_in(&python, &Sysroot::of(target), stdlib, strict, cache_root).await
}

/// The bundle of `python`, whose objects come from `sysroot`, made first if needed.
pub async fn build_runtime_in(
    python: &InterpreterFacts,
    sysroot: &Sysroot,
    stdlib: &StdlibChoice,
    strict: bool,
    cache_root: &Path,
) -> Result<Runtime, RuntimeError> {
    let key = &runtime_key(python, sysroot, stdlib);
    let parent = cache_root.join("runtimes");
    let dir = parent.join(key);
    // Hashing the bundle (some 30 MB) leaves the async thread, where the wheel's build and
    // the wheelhouse go on meanwhile.
    let check = dir.clone();
    let cached = tokio::task::spawn_blocking(move || cached_runtime(&check))
        .await
        .ok()
        .flatten();
    if let Some(mut runtime) = cached {
        runtime.dir = dir.join("bundle");
        runtime.reused = true;
        return Ok(runtime);
    }
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let staging = Staged::dir_in(&parent, &format!(".{key}-")).map_err(io("create", &parent))?;
    let bundle = staging.path().join("bundle");
    let mut runtime = assemble(python, sysroot, &stdlib.exclude, &bundle)?;
    if strict {
        if let Some((library, module)) = runtime.missing.first() {
            return Err(RuntimeError::MissingLibrary {
                library: library.clone(),
                module: module.clone(),
            });
        }
    }
    runtime.site_packages = site_packages_of(&bundle, &runtime.python, sysroot).await?;
    let site = bundle.join(&runtime.site_packages);
    std::fs::create_dir_all(&site).map_err(io("create", &site))?;
    compile_stdlib(&bundle.join(&runtime.python), &bundle, python, sysroot).await?;
    zip_stdlib(&bundle, python, stdlib.sources)?;
    std::fs::write(
        staging.path().join(MARKER),
        serde_json::to_vec_pretty(&runtime).expect("runtime serialises"),
    )
    .map_err(io("write", staging.path()))?;
    integrity::seal(staging.path()).map_err(io("record the digests of", staging.path()))?;
    integrity::settle(staging, &dir).map_err(io("move into place", &dir))?;
    runtime.dir = dir.join("bundle");
    Ok(runtime)
}

/// The bundle cached in `dir`, when it is whole, as it was made, and lists no missing
/// library (those may have been installed since). Every file is checked against the
/// digests recorded when the bundle was made: tiers copy it into their artifacts.
fn cached_runtime(dir: &Path) -> Option<Runtime> {
    let runtime = std::fs::read(dir.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<Runtime>(&b).ok())
        .filter(|runtime| runtime.missing.is_empty())?;
    if !runtime.sources_unchanged() {
        tracing::info!(
            "a library the cached runtime bundle `{}` copied has changed on this host; making it again",
            dir.display()
        );
        // Out of the way, as a damaged one: a new bundle does not replace a whole one.
        let _ = integrity::discard(dir);
        return None;
    }
    match integrity::check(dir) {
        State::Intact => Some(runtime),
        State::Unsealed => None,
        damaged => {
            tracing::warn!(
                "the cached runtime bundle `{}` is damaged: {damaged}; making it again",
                dir.display()
            );
            let _ = integrity::discard(dir);
            None
        }
    }
}

/// The cache key of the bundle of `python` with `stdlib`: its format, the machine, the
/// interpreter (path, version, size and time), the excluded names and whether sources are
/// kept.
fn runtime_key(python: &InterpreterFacts, sysroot: &Sysroot, stdlib: &StdlibChoice) -> String {
    let mut hasher = Sha256::new();
    for part in [
        FORMAT,
        sysroot.machine,
        &python.executable.to_string_lossy(),
        &python.full_version(),
    ] {
        hasher.update(part);
        hasher.update([0]);
    }
    let mut sorted: Vec<&String> = stdlib.exclude.iter().collect();
    sorted.sort();
    for name in sorted {
        hasher.update(name);
        hasher.update([1]);
    }
    if stdlib.sources {
        hasher.update("with sources");
    }
    if let Ok(meta) = std::fs::metadata(&python.executable) {
        hasher.update(format!("{:?}{}", meta.modified().ok(), meta.len()));
    }
    hex::encode(hasher.finalize())[..20].to_string()
}

/// Whether a complete bundle of `python` with `stdlib` is in the cache (for `plan`: a
/// quick look, its digests unchecked).
pub fn runtime_cached(python: &InterpreterFacts, stdlib: &StdlibChoice, cache_root: &Path) -> bool {
    let dir = cache_root
        .join("runtimes")
        .join(runtime_key(python, &Sysroot::host(), stdlib));
    integrity::is_sealed(&dir)
        && std::fs::read(dir.join(MARKER))
            .ok()
            .and_then(|b| serde_json::from_slice::<Runtime>(&b).ok())
            .is_some_and(|runtime| runtime.missing.is_empty() && runtime.sources_unchanged())
}

/// Unpack a user-named relocatable CPython archive (`.tar.gz`, holding `bin/pythonX.Y`
/// at its top or one folder down) into the cache, check it is for `target`'s machine and
/// the build interpreter's X.Y, and return its facts: the bundle is then made from it.
/// The checks read the archive's files and are the same for every platform; only an
/// archive for the host is then run (for its facts and C library): another platform's is
/// refused after its checks with [`RuntimeError::ArchiveForeign`] until the build bundles
/// foreign archives.
pub async fn unpack_runtime_archive(
    archive: &Path,
    target: Platform,
    build_python: &InterpreterFacts,
    cache_root: &Path,
) -> Result<InterpreterFacts, RuntimeError> {
    let interpreter =
        checked_runtime_archive(archive, target, &build_python.short_version(), cache_root)?;
    if !target.is_host() {
        return Err(RuntimeError::ArchiveForeign {
            path: archive.to_path_buf(),
            platform: target,
        });
    }
    let corrupt = |reason: String| RuntimeError::ArchiveCorrupt {
        path: archive.to_path_buf(),
        reason,
    };
    let facts = crate::interpreter::find_interpreter(
        &crate::PythonRequest::Path(interpreter.clone()),
        cache_root,
    )
    .await
    .map_err(|e| corrupt(format!("its interpreter does not start ({e})")))?;
    let libc = |f: &InterpreterFacts| f.libc.as_ref().map(|(name, _)| name.clone());
    if libc(&facts) != libc(build_python) {
        return Err(RuntimeError::ArchiveOtherPlatform {
            path: archive.to_path_buf(),
            found: format!(
                "{target} with {}",
                libc(&facts).unwrap_or_else(|| "another C library".into())
            ),
            wanted: format!("{target} with {}", libc(build_python).unwrap_or_default()),
        });
    }
    if facts.short_version() != build_python.short_version()
        || facts.implementation != build_python.implementation
        || facts.abi_tag != build_python.abi_tag
    {
        return Err(RuntimeError::ArchiveOtherVersion {
            path: archive.to_path_buf(),
            found: facts.short_version(),
            wanted: build_python.short_version(),
        });
    }
    Ok(facts)
}

/// Unpack `archive` into `CACHE/runtime-archives/KEY` (once per archive digest) and return
/// its `bin/pythonX.Y`, after checking from the files alone that it is built for
/// `target`'s machine and that its X.Y is `short_version`.
pub fn checked_runtime_archive(
    archive: &Path,
    target: Platform,
    short_version: &str,
    cache_root: &Path,
) -> Result<PathBuf, RuntimeError> {
    if !archive.is_file() {
        return Err(RuntimeError::ArchiveMissing {
            path: archive.to_path_buf(),
        });
    }
    let corrupt = |reason: String| RuntimeError::ArchiveCorrupt {
        path: archive.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(archive).map_err(io("read", archive))?;
    let key = &hex::encode(Sha256::digest(&bytes))[..20];
    let parent = cache_root.join("runtime-archives");
    let dir = parent.join(key);
    if !dir.join(".complete").is_file() {
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        let staging =
            Staged::dir_in(&parent, &format!(".{key}-")).map_err(io("create", &parent))?;
        gradient_archive::extract_tar_gz(archive, staging.path())
            .map_err(|e| corrupt(error_chain(&e)))?;
        std::fs::write(staging.path().join(".complete"), b"")
            .map_err(io("write", staging.path()))?;
        settle(staging, &dir, ".complete")?;
    }
    let interpreter = find_archive_interpreter(&dir)
        .ok_or_else(|| corrupt("it holds no bin/pythonX.Y".into()))?;
    let machine = elf_machine(&interpreter)
        .map_err(|e| corrupt(format!("its interpreter is not a program ({e})")))?;
    if machine != target.machine() {
        return Err(RuntimeError::ArchiveOtherPlatform {
            path: archive.to_path_buf(),
            found: format!("linux {machine}"),
            wanted: format!("{target} ({})", target.machine()),
        });
    }
    let found = interpreter
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("python"))
        .unwrap_or_default();
    if found != short_version {
        return Err(RuntimeError::ArchiveOtherVersion {
            path: archive.to_path_buf(),
            found: found.to_string(),
            wanted: short_version.to_string(),
        });
    }
    Ok(interpreter)
}

fn find_archive_interpreter(dir: &Path) -> Option<PathBuf> {
    let mut tops = vec![dir.to_path_buf()];
    tops.extend(
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir()),
    );
    tops.iter().find_map(|top| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(top.join("bin"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.strip_prefix("python3.").is_some_and(|minor| {
                    !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit())
                })
            })
            .collect();
        found.sort();
        found.pop()
    })
}

/// The machine an ELF program is built for, in the wheel platform's words.
fn elf_machine(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let header = goblin::elf::Elf::parse_header(&bytes).map_err(std::io::Error::other)?;
    Ok(match header.e_machine {
        goblin::elf::header::EM_X86_64 => "x86_64".into(),
        goblin::elf::header::EM_AARCH64 => "aarch64".into(),
        goblin::elf::header::EM_386 => "i686".into(),
        goblin::elf::header::EM_PPC64 => "ppc64".into(),
        goblin::elf::header::EM_S390 => "s390x".into(),
        other => format!("machine {other}"),
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Move a finished staging folder to `dir`. When another process got there first with a
/// complete folder (it has `marker`), theirs is kept and in use: ours goes. A folder
/// without the marker is a leftover of an interrupted run and is replaced.
fn settle(mut staged: Staged, dir: &Path, marker: &str) -> Result<(), RuntimeError> {
    if staged.persist(dir).is_ok() || dir.join(marker).is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    staged.persist(dir).map_err(io("move into place", dir))
}

/// Copy the interpreter, its standard library and its library closure into `bundle`.
fn assemble(
    python: &InterpreterFacts,
    sysroot: &Sysroot,
    exclude: &[String],
    bundle: &Path,
) -> Result<Runtime, RuntimeError> {
    let version = python.short_version();
    let base = &python.base_prefix;
    let stdlib = base.join("lib").join(format!("python{version}"));
    if !stdlib.join("os.py").is_file() {
        return Err(RuntimeError::Unsupported {
            python: python.executable.clone(),
            reason: format!("its standard library is not at `{}`", stdlib.display()),
        });
    }
    let exe_name = format!("python{version}");
    let bin = bundle.join("bin");
    let lib = bundle.join("lib");
    let bundled_stdlib = lib.join(format!("python{version}"));
    for dir in [&bin, &lib] {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    copy_file(&python.executable, &bin.join(&exe_name))?;
    std::os::unix::fs::symlink(&exe_name, bin.join("python3")).map_err(io("link", &bin))?;

    // The standard library, minus what an app never needs.
    let excluded: BTreeSet<&str> = exclude.iter().map(String::as_str).collect();
    let is_excluded = |relative: &Path| {
        let mut parts = relative.iter().map(|p| p.to_string_lossy());
        let first = parts.next().unwrap_or_default();
        let top = if first == "lib-dynload" {
            parts.next().unwrap_or_default()
        } else {
            first
        };
        let module = top.split('.').next().unwrap_or_default();
        // The host's own packages never belong in a bundle, whatever the exclude list says.
        top == "site-packages"
            || top == "dist-packages"
            || excluded.contains(top.as_ref())
            || excluded
                .iter()
                .any(|e| e.contains('/') && relative.starts_with(e))
            || excluded.iter().any(|e| {
                module == *e
                    || ((e.starts_with('_') || e.starts_with("xx")) && module.starts_with(e))
            })
            || top.starts_with("config-")
    };
    for entry in walkdir::WalkDir::new(&stdlib)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let relative = e.path().strip_prefix(&stdlib).unwrap_or(e.path());
            e.file_name() != "__pycache__"
                && (relative.as_os_str().is_empty() || !is_excluded(relative))
        })
    {
        let entry = entry.map_err(|e| RuntimeError::Io {
            action: "read",
            path: stdlib.clone(),
            source: e.into(),
        })?;
        let relative = entry.path().strip_prefix(&stdlib).expect("inside the walk");
        let target = bundled_stdlib.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).map_err(io("create", &target))?;
        } else if entry.file_type().is_file() && !relative.to_string_lossy().ends_with(".pyc") {
            copy_file(entry.path(), &target)?;
        }
    }
    // The closure of shared libraries, resolved as the loader would from the originals.
    let mut queue: VecDeque<(PathBuf, PathBuf)> = VecDeque::new(); // (original, bundled)
    queue.push_back((python.executable.clone(), bin.join(&exe_name)));
    let dynload = bundled_stdlib.join("lib-dynload");
    let mut modules: Vec<_> = std::fs::read_dir(&dynload)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    modules.sort();
    for module in modules {
        queue.push_back((
            stdlib.join("lib-dynload").join(&module),
            dynload.join(&module),
        ));
    }
    let mut bundled: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    let mut glibc: Option<(u32, u32)> = None;
    let mut search_paths_fixed = Vec::new();
    let interpreter = bin.join(&exe_name);
    while let Some((original, copy)) = queue.pop_front() {
        let Some(facts) = elf::read(&copy).map_err(io("read", &copy))? else {
            continue;
        };
        let machine = elf_machine(&copy).map_err(io("read", &copy))?;
        if machine != sysroot.machine {
            return Err(RuntimeError::OtherMachine {
                path: original,
                found: machine,
                wanted: sysroot.machine.to_string(),
            });
        }
        glibc = glibc.max(facts.glibc);
        let origin = original.parent().unwrap_or(Path::new("/")).to_path_buf();
        for needed in &facts.needed {
            if GLIBC_FAMILY.contains(&needed.as_str()) || bundled.contains_key(needed) {
                continue;
            }
            if needed.contains('/') {
                // A path, not a soname (linked against a library without one): it cannot be
                // placed in lib/ and is never copied over itself.
                missing.push((
                    needed.clone(),
                    copy.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                ));
                continue;
            }
            match sysroot.resolve(needed, &facts.search_path, &origin) {
                Some(found) => {
                    let target = lib.join(needed);
                    copy_file(&found, &target)?;
                    sources.push((found.clone(), file_stamp(&found).unwrap_or_default()));
                    bundled.insert(needed.clone(), target.clone());
                    queue.push_back((found, target));
                }
                None => missing.push((
                    needed.clone(),
                    copy.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                )),
            }
        }
        // The interpreter always gets a search path (inserted when it has none); another
        // object only when it has one (a host path, replaced): without one, the
        // interpreter's DT_RPATH serves it, and an inserted one would keep `strip`
        // (the OS-package tiers') off it.
        if copy == interpreter || !facts.search_path.is_empty() {
            search_paths_fixed.push(copy);
        }
    }

    // Debug info goes first: binutils cannot rewrite an object that has a search path
    // inserted (it moves the added segment over the one before), so nothing strips after.
    strip_debug_info(&elf_objects(bundle), sysroot);
    // Search paths: only $ORIGIN-relative ones, pointing at the bundle's lib/, rewritten in
    // place or inserted (elf::set_search_path).
    for object in search_paths_fixed {
        let (new, as_rpath) = if object == interpreter {
            ("$ORIGIN/../lib", true)
        } else if object.parent() == Some(dynload.as_path()) {
            ("$ORIGIN/../..", false)
        } else {
            ("$ORIGIN", false)
        };
        elf::set_search_path(&object, new, as_rpath)
            .map_err(io("set the search path of", &object))?;
    }
    let points_at_bundle = elf::read(&interpreter)
        .map_err(io("read", &interpreter))?
        .is_some_and(|f| f.search_path == ["$ORIGIN/../lib"]);
    if !points_at_bundle && !bundled.is_empty() {
        return Err(RuntimeError::Unsupported {
            python: python.executable.clone(),
            reason: "the interpreter's search path could not be set to the bundled libraries"
                .into(),
        });
    }
    Ok(Runtime {
        dir: bundle.to_path_buf(),
        python: format!("bin/{exe_name}"),
        // Set once the bundled interpreter can say where it looks ([`site_packages_of`]).
        site_packages: String::new(),
        glibc: glibc.map(|(major, minor)| format!("{major}.{minor}")),
        libraries: bundled.into_keys().collect(),
        missing,
        sources,
        reused: false,
    })
}

/// The preflight of every tier that carries the runtime bundle (frozen, oci, docker, deb,
/// rpm): refused, with what to do, when `python` cannot be bundled.
pub fn require_bundleable(python: &InterpreterFacts) -> Result<(), gradient_core::Unavailable> {
    match unsupported_reason(python) {
        None => Ok(()),
        Some(reason) => Err(gradient_core::Unavailable {
            reason,
            hint: Some("build with a 64-bit x86_64 or aarch64 CPython, e.g. Debian's or pyenv's: --python ~/.pyenv/versions/X.Y.Z/bin/python3".into()),
        }),
    }
}

/// Why `python` cannot be made relocatable, if it cannot: it needs libraries beyond glibc
/// and is an ELF object whose search path cannot be set ([`elf::set_search_path`] refuses
/// 32-bit, big-endian and other-machine objects). One without a search path is fine: one
/// is inserted.
pub fn unsupported_reason(python: &InterpreterFacts) -> Option<String> {
    let facts = elf::read(&python.executable).ok()??;
    let outside: Vec<&str> = facts
        .needed
        .iter()
        .map(String::as_str)
        .filter(|n| !GLIBC_FAMILY.contains(n))
        .collect();
    if outside.is_empty() {
        return None;
    }
    let bytes = std::fs::read(&python.executable).ok()?;
    let reason = elf::search_path_settable(&bytes).err()?;
    Some(format!(
        "`{}` needs {} but its search path cannot be pointed at bundled copies: {reason}",
        python.executable.display(),
        outside.join(", ")
    ))
}

/// Move the compiled pure-Python standard library into `lib/pythonXY.zip`, which CPython
/// puts on `sys.path` by itself: a first run then extracts one file instead of thousands,
/// which is most of its time. Bytecode only (as PyInstaller ships it), so standard-library
/// tracebacks show no source lines. `lib-dynload`, `site-packages` and non-Python data
/// files stay real files, and so does `os.py`, the landmark by which the interpreter finds
/// its prefix.
fn zip_stdlib(
    bundle: &Path,
    python: &InterpreterFacts,
    with_sources: bool,
) -> Result<(), RuntimeError> {
    let (major, minor, _) = python.version;
    let stdlib = bundle.join("lib").join(format!("python{major}.{minor}"));
    let suffix = format!(".{}-{major}{minor}.pyc", python.implementation);
    let mut entries = Vec::new();
    let mut zipped_sources = Vec::new();
    for entry in walkdir::WalkDir::new(&stdlib)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.depth() == 1
                && (e.file_name() == "lib-dynload"
                    || e.file_name() == "site-packages"
                    || e.file_name() == "dist-packages"))
        })
    {
        let entry = entry.map_err(|e| RuntimeError::Io {
            action: "read",
            path: stdlib.clone(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(&stdlib)
            .expect("inside the walk")
            .to_string_lossy()
            .into_owned();
        let Some((folder, leaf)) = relative.rsplit_once("__pycache__/") else {
            continue;
        };
        let Some(module) = leaf.strip_suffix(&suffix).filter(|m| !m.contains('.')) else {
            continue;
        };
        let data = std::fs::read(entry.path()).map_err(io("read", entry.path()))?;
        let source = stdlib.join(format!("{folder}{module}.py"));
        if with_sources {
            // Beside its bytecode, where zipimport's get_source (and so linecache,
            // tracebacks and inspect) finds it; its bytecode stays the one that runs.
            if let Ok(text) = std::fs::read(&source) {
                entries.push(gradient_archive::Entry {
                    path: format!("{folder}{module}.py"),
                    kind: gradient_archive::EntryKind::File(text),
                    mode: 0o644,
                });
            }
        }
        // Its source file goes once the zip has what it needs (os.py stays: the landmark).
        if !(folder.is_empty() && module == "os") {
            zipped_sources.push(source);
        }
        entries.push(gradient_archive::Entry {
            path: format!("{folder}{module}.pyc"),
            kind: gradient_archive::EntryKind::File(data),
            mode: 0o644,
        });
    }
    let zip = bundle.join("lib").join(format!("python{major}{minor}.zip"));
    gradient_archive::write_zip_stored(&zip, &entries, gradient_core::FALLBACK_EPOCH).map_err(
        |e| RuntimeError::Io {
            action: "write",
            path: zip.clone(),
            source: std::io::Error::other(e),
        },
    )?;
    for source in zipped_sources {
        match std::fs::remove_file(&source) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", &source)(e))
            }
            _ => {}
        }
    }
    for entry in walkdir::WalkDir::new(&stdlib).contents_first(true) {
        let Ok(entry) = entry else { continue };
        let is_cache = entry
            .path()
            .components()
            .any(|c| c.as_os_str() == "__pycache__");
        let keep = entry.path().starts_with(stdlib.join("lib-dynload"))
            || entry.path().starts_with(stdlib.join("site-packages"))
            || entry.path().starts_with(stdlib.join("dist-packages"));
        if is_cache && !keep {
            if entry.file_type().is_dir() {
                let _ = std::fs::remove_dir(entry.path());
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
        } else if entry.file_type().is_dir() && entry.path() != stdlib && !keep {
            let _ = std::fs::remove_dir(entry.path()); // only succeeds when now empty
        }
    }
    Ok(())
}

/// Every ELF file in the bundle.
fn elf_objects(bundle: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(bundle)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let mut magic = [0u8; 4];
            std::fs::File::open(e.path())
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok_and(|()| &magic == b"\x7fELF")
        })
        .map(|e| e.into_path())
        .collect()
}

/// Build interpreters often keep their debug info (pyenv's libpython is 23 MB with it, 6 MB
/// without). binutils' `strip --strip-debug` removes it and nothing a program runs with;
/// where `strip` is missing the bundle is only larger, and that is said.
/// For another machine's objects the host's `strip` does not know the format: that
/// machine's binutils (`aarch64-linux-gnu-strip`) are used when installed, and otherwise
/// nothing is stripped (Debian's objects come without debug info).
fn strip_debug_info(objects: &[PathBuf], sysroot: &Sysroot) {
    if objects.is_empty() {
        return;
    }
    let strip = if sysroot.machine == std::env::consts::ARCH {
        "strip".to_string()
    } else {
        let cross = format!("{}-strip", sysroot.triplet);
        if crate::interpreter::which(&cross).is_none() {
            tracing::debug!(
                "`{cross}` is not installed: the {} runtime is not stripped",
                sysroot.machine
            );
            return;
        }
        cross
    };
    match std::process::Command::new(&strip)
        .arg("--strip-debug")
        .args(objects)
        .output()
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => tracing::warn!(
            "{strip} --strip-debug failed, the runtime keeps its debug info: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(_) => tracing::warn!(
            "`{strip}` (binutils) is not installed: the runtime keeps its debug info and is larger"
        ),
    }
}

/// The host's C library family, resolved as its loader would (`soname` → real file): what
/// a bundle leaves out and an image without a base must bring. The loader itself is
/// listed under its soname too (`ld-linux-x86-64.so.2`), with the name-service modules.
pub fn glibc_files() -> Vec<(String, PathBuf)> {
    let host = Sysroot::host();
    let mut names: Vec<&str> = GLIBC_FAMILY.to_vec();
    names.extend(["libnss_files.so.2", "libnss_dns.so.2"]);
    names
        .into_iter()
        .filter_map(|name| {
            let found = host.resolve(name, &[], Path::new("/"))?;
            Some((name.to_string(), std::fs::canonicalize(found).ok()?))
        })
        .collect()
}

/// The libraries beyond glibc that the extension modules under `site` take from the system
/// they run on, with what those need in turn (`soname` → the host's file): the manylinux
/// policy lets a wheel link `libstdc++.so.6` and `libgcc_s.so.1` without carrying them.
/// What a module finds through its own search path (auditwheel's `.libs` copies) or in
/// `bundle_lib` (the runtime bundle's `lib/`) is not listed; nor is what the host lacks
/// (the smoke test shows that).
pub fn system_libraries(site: &Path, bundle_lib: Option<&Path>) -> Vec<(String, PathBuf)> {
    system_libraries_in(&Sysroot::host(), site, bundle_lib)
}

/// [`system_libraries`] for extension modules that run on `system` (a target's root), whose
/// files the libraries are then: what the host has does not count.
pub fn system_libraries_in(
    system: &Sysroot,
    site: &Path,
    bundle_lib: Option<&Path>,
) -> Vec<(String, PathBuf)> {
    let host = system;
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut queue: VecDeque<PathBuf> = elf_objects(site).into();
    while let Some(object) = queue.pop_front() {
        let Ok(Some(facts)) = elf::read(&object) else {
            continue;
        };
        let origin = object.parent().unwrap_or(Path::new("/"));
        for needed in &facts.needed {
            let own = facts.search_path.iter().any(|dir| {
                Path::new(&dir.replace("$ORIGIN", &origin.to_string_lossy()))
                    .join(needed)
                    .is_file()
            });
            if own
                || needed.contains('/')
                || GLIBC_FAMILY.contains(&needed.as_str())
                || found.contains_key(needed)
                || bundle_lib.is_some_and(|lib| lib.join(needed).exists())
            {
                continue;
            }
            let Some(file) = host
                .resolve(needed, &[], Path::new("/"))
                .and_then(|p| std::fs::canonicalize(p).ok())
            else {
                continue;
            };
            found.insert(needed.clone(), file.clone());
            queue.push_back(file);
        }
    }
    found.into_iter().collect()
}

/// The host's file for each of `sonames` it has, resolved as its loader would.
pub fn host_libraries(sonames: &[String]) -> Vec<(String, PathBuf)> {
    libraries_in(&Sysroot::host(), sonames)
}

/// `system`'s file for each of `sonames` it has, resolved as its loader would.
pub fn libraries_in(system: &Sysroot, sonames: &[String]) -> Vec<(String, PathBuf)> {
    let host = system;
    sonames
        .iter()
        .filter_map(|name| {
            let found = host.resolve(name, &[], Path::new("/"))?;
            Some((name.clone(), std::fs::canonicalize(found).ok()?))
        })
        .collect()
}

/// The loader's cache (`ldconfig -p`): soname → path, for this machine's word size. Read
/// once per process: a build asks for it for each tier that carries the runtime or glibc.
fn loader_cache() -> &'static BTreeMap<String, PathBuf> {
    static CACHE: std::sync::OnceLock<BTreeMap<String, PathBuf>> = std::sync::OnceLock::new();
    CACHE.get_or_init(read_loader_cache)
}

fn read_loader_cache() -> BTreeMap<String, PathBuf> {
    let output = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .or_else(|_| {
            std::process::Command::new("/sbin/ldconfig")
                .arg("-p")
                .output()
        });
    let Ok(output) = output else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("x86-64") || !l.contains('('))
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(' ')?;
            let (_, path) = rest.split_once("=> ")?;
            Some((name.to_string(), PathBuf::from(path.trim())))
        })
        .rev() // the first entry wins, as it does for the loader
        .collect()
}

/// Copy a file (following links), keeping its permission bits.
fn copy_file(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::copy(from, to).map_err(io("copy", from))?;
    Ok(())
}

/// Compile the bundled standard library with the bundled interpreter itself (which proves
/// it starts from its new place): unchecked-hash `.pyc`, so the bytes do not depend on
/// file times.
async fn compile_stdlib(
    interpreter: &Path,
    bundle: &Path,
    python: &InterpreterFacts,
    sysroot: &Sysroot,
) -> Result<(), PythonError> {
    let stdlib = bundle
        .join("lib")
        .join(format!("python{}", python.short_version()));
    // What CPython's own install leaves out: files that must not compile, and site-packages.
    let skip = [
        "bad_coding",
        "badsyntax",
        "lib2to3/tests/data",
        "site-packages",
        "dist-packages",
    ];
    compile_tree_in(
        interpreter,
        sysroot.loader_prefix.as_deref(),
        &stdlib,
        bundle,
        &skip,
    )
    .await
}

/// Where the bundled interpreter's `site` module looks for packages, relative to the
/// bundle: `lib/pythonX.Y/site-packages` for CPython as built upstream (pyenv's),
/// `lib/pythonX.Y/dist-packages` for Debian's, whose `site` is patched to look there (and
/// never in `site-packages`). Asked of the interpreter itself, from its new place, so the
/// app's packages go where it will find them.
async fn site_packages_of(
    bundle: &Path,
    python: &str,
    sysroot: &Sysroot,
) -> Result<String, RuntimeError> {
    let interpreter = bundle.join(python);
    let mut command = compiler(&interpreter);
    if let Some(prefix) = &sysroot.loader_prefix {
        command.env("QEMU_LD_PREFIX", prefix);
    }
    let output = command
        .args([
            "-c",
            "import site; print('\\n'.join(site.getsitepackages()))",
        ])
        .output()
        .await
        .map_err(io("run", &interpreter))?;
    let listed = String::from_utf8_lossy(&output.stdout);
    let relative: Vec<PathBuf> = listed
        .lines()
        .filter_map(|line| Path::new(line).strip_prefix(bundle).ok())
        .map(Path::to_path_buf)
        .collect();
    let version_dir = Path::new("lib").join(Path::new(python).file_name().unwrap_or_default());
    relative
        .iter()
        .find(|p| p.starts_with(&version_dir))
        .or_else(|| relative.iter().find(|p| p.starts_with("lib")))
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| RuntimeError::Unsupported {
            python: interpreter.clone(),
            reason: format!(
                "its site module names no package folder under the bundle's lib/ (it named: {}{})",
                listed.trim(),
                if output.status.success() {
                    String::new()
                } else {
                    format!("; it exited with {}", output.status)
                }
            ),
        })
}

/// Byte-compile `tree` so that the bytes depend on the sources alone: unchecked-hash
/// `.pyc` (no file times), file names relative to `root` (no build-machine path), one
/// process in one order with fixed hashing (marshal's output depends on what the process
/// has interned and shared), `-S` so that what the process has imported does not depend on
/// the `.pth` files of the build machine's site-packages (which also cost ~40 ms a start
/// with a full one), `-B` so that the modules the interpreter imports to run compileall get
/// no timestamp-based `.pyc` that `-f` would then have to overwrite.
/// Paths matching any pattern of `skip` (regular expressions) are left alone.
pub async fn compile_tree(
    interpreter: &Path,
    tree: &Path,
    root: &Path,
    skip: &[&str],
) -> Result<(), PythonError> {
    compile_tree_in(interpreter, None, tree, root, skip).await
}

/// [`compile_tree`] with a foreign `interpreter` run under qemu-user, which takes the
/// loader and the C library from `loader_prefix`.
pub async fn compile_tree_in(
    interpreter: &Path,
    loader_prefix: Option<&Path>,
    tree: &Path,
    root: &Path,
    skip: &[&str],
) -> Result<(), PythonError> {
    let mut command = compiler(interpreter);
    if let Some(prefix) = loader_prefix {
        command.env("QEMU_LD_PREFIX", prefix);
    }
    command.args([
        "-m",
        "compileall",
        "-q",
        "-f",
        "-j",
        "1",
        "--invalidation-mode",
        "unchecked-hash",
    ]);
    if !skip.is_empty() {
        // compileall takes one -x (the last wins): a regular expression searched in each path.
        command.arg("-x").arg(skip.join("|"));
    }
    command.arg("-s").arg(root).args(["-p", "/"]).arg(tree);
    run_checked(&mut command, "byte-compile").await?;
    Ok(())
}

/// `interpreter` set up to compile as [`compile_tree`] explains: isolated, no `site`, no
/// bytecode of its own, fixed hashing, an empty environment.
fn compiler(interpreter: &Path) -> Command {
    let mut command = Command::new(interpreter);
    command
        .args(["-I", "-S", "-B"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PYTHONHASHSEED", "0");
    command
}

/// Byte-compile one source file into an unchecked-hash `.pyc` at `target` that names
/// `shown_as` as its file in tracebacks: the same deterministic bytecode as
/// [`compile_tree`], for a file that is not laid out in a tree.
pub async fn compile_file(
    interpreter: &Path,
    source: &Path,
    target: &Path,
    shown_as: &str,
) -> Result<(), PythonError> {
    let mut command = compiler(interpreter);
    command
        .args([
            "-c",
            "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], \
             dfile=sys.argv[3], doraise=True, \
             invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)",
        ])
        .arg(source)
        .arg(target)
        .arg(shown_as);
    run_checked(&mut command, "byte-compile").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_whose_host_library_changed_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("libz.so.1");
        std::fs::write(&library, b"zlib 1.2.13").unwrap();
        let runtime = Runtime {
            dir: dir.path().to_path_buf(),
            python: "bin/python3.11".into(),
            site_packages: "lib/python3.11/site-packages".into(),
            glibc: None,
            libraries: vec!["libz.so.1".into()],
            missing: Vec::new(),
            sources: vec![(library.clone(), file_stamp(&library).unwrap())],
            reused: false,
        };
        assert!(runtime.sources_unchanged());
        // A security update replaces the file: another size and time.
        std::fs::write(&library, b"zlib 1.2.13+deb12u1").unwrap();
        assert!(!runtime.sources_unchanged());
        // A marker written before sources were recorded cannot vouch for its libraries.
        let older = Runtime {
            sources: Vec::new(),
            ..runtime
        };
        assert!(!older.sources_unchanged());
    }

    /// Rename one DT_NEEDED string of an ELF file in place (same length).
    fn rename_needed(path: &Path, from: &str, to: &str) {
        assert_eq!(from.len(), to.len());
        let mut bytes = std::fs::read(path).unwrap();
        let needle = format!("{from}\0");
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("the name is in the string table");
        bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn system_libraries_are_what_extension_modules_link_beyond_glibc_and_carry_nowhere() {
        let Some(libstdcxx) = loader_cache().get("libstdc++.so.6") else {
            eprintln!("skipped: this host has no libstdc++.so.6");
            return;
        };
        // An extension module that links libstdc++ (which links libgcc_s), as a manylinux
        // wheel's C++ module does.
        let site = tempfile::tempdir().unwrap();
        let module = site.path().join("pkg/_ext.cpython-311-x86_64-linux-gnu.so");
        copy_file(libstdcxx, &module).unwrap();
        let names = |found: Vec<(String, PathBuf)>| -> Vec<String> {
            found.into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(
            names(system_libraries(site.path(), None)),
            ["libgcc_s.so.1"]
        );
        // One the runtime bundle carries is not the system's to provide.
        let bundle_lib = tempfile::tempdir().unwrap();
        std::fs::write(bundle_lib.path().join("libgcc_s.so.1"), b"").unwrap();
        assert!(system_libraries(site.path(), Some(bundle_lib.path())).is_empty());
    }

    #[tokio::test]
    async fn a_library_found_nowhere_is_named_with_its_module_and_strict_refuses_it() {
        let cache = tempfile::tempdir().unwrap();
        let real = crate::find_interpreter(&crate::PythonRequest::Default, cache.path())
            .await
            .unwrap();
        // A fake prefix: the real interpreter, an os.py, and one extension module that needs
        // a library no machine has.
        let prefix = tempfile::tempdir().unwrap();
        let version = real.short_version();
        let dynload = prefix
            .path()
            .join(format!("lib/python{version}/lib-dynload"));
        std::fs::create_dir_all(&dynload).unwrap();
        std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
        std::fs::write(prefix.path().join(format!("lib/python{version}/os.py")), "").unwrap();
        let exe = prefix.path().join(format!("bin/python{version}"));
        std::fs::copy(&real.executable, &exe).unwrap();
        let zlib = std::fs::read_dir(
            real.base_prefix
                .join(format!("lib/python{version}/lib-dynload")),
        )
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("zlib."))
        .expect("the build interpreter has a zlib module")
        .path();
        let module = dynload.join(zlib.file_name().unwrap());
        std::fs::copy(&zlib, &module).unwrap();
        rename_needed(&module, "libz.so.1", "libq.so.1");
        let fake = InterpreterFacts {
            executable: exe,
            base_prefix: prefix.path().to_path_buf(),
            ..real.clone()
        };

        let bundle = tempfile::tempdir().unwrap();
        let runtime =
            assemble(&fake, &Sysroot::host(), &[], &bundle.path().join("bundle")).unwrap();
        let module_name = module.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            runtime.missing,
            [("libq.so.1".to_string(), module_name.clone())]
        );

        let err = build_runtime(
            &fake,
            &StdlibChoice {
                exclude: Vec::new(),
                sources: false,
            },
            true,
            cache.path(),
        )
        .await
        .unwrap_err();
        let hint = gradient_core::Hint::hint(&err);
        let err = err.to_string();
        assert!(
            err.contains(&module_name) && err.contains("libq.so.1"),
            "{err}"
        );
        assert!(hint.is_some(), "{err}");
    }

    #[tokio::test]
    async fn the_bundle_runs_from_anywhere_and_loads_only_its_own_libraries() {
        let cache = tempfile::tempdir().unwrap();
        let python = crate::find_interpreter(&crate::PythonRequest::Default, cache.path())
            .await
            .unwrap();
        bundle_runs_from_anywhere(&python, cache.path()).await;
    }

    /// Debian's own interpreter has no RUNPATH or RPATH (nor do its extension modules): one
    /// is inserted, and the bundle loads libz and libexpat from its lib/.
    #[tokio::test]
    async fn an_interpreter_without_a_search_path_is_bundled() {
        let debian = Path::new("/usr/bin/python3.11");
        let has_none = elf::read(debian)
            .ok()
            .flatten()
            .is_some_and(|f| f.search_path.is_empty() && f.needed.iter().any(|n| n == "libz.so.1"));
        if !has_none {
            eprintln!("skipped: no /usr/bin/python3.11 without a search path that links libz");
            return;
        }
        let cache = tempfile::tempdir().unwrap();
        let python =
            crate::find_interpreter(&crate::PythonRequest::Path(debian.into()), cache.path())
                .await
                .unwrap();
        assert_eq!(unsupported_reason(&python), None);
        let runtime = bundle_runs_from_anywhere(&python, cache.path()).await;
        assert!(runtime.libraries.iter().any(|l| l == "libz.so.1"));
        let facts = elf::read(&runtime.dir.join(&runtime.python))
            .unwrap()
            .unwrap();
        assert_eq!(facts.search_path, ["$ORIGIN/../lib"]);
    }

    async fn bundle_runs_from_anywhere(python: &InterpreterFacts, cache: &Path) -> Runtime {
        let python = python.clone();
        let stdlib = StdlibChoice::of(&gradient_core::RuntimeConfig::default());
        let runtime = build_runtime(&python, &stdlib, false, cache).await.unwrap();
        assert!(runtime.missing.is_empty(), "{:?}", runtime.missing);
        assert!(runtime.glibc.is_some());
        assert!(
            !runtime.dir.join("lib/python3.11/test").exists() || python.short_version() != "3.11"
        );
        // A path in the list leaves out a folder inside a package, and only that.
        let (major, minor, _) = python.version;
        let zipped: Vec<String> = gradient_archive::read_zip_entries(
            &runtime.dir.join(format!("lib/python{major}{minor}.zip")),
        )
        .unwrap()
        .into_iter()
        .map(|entry| entry.path)
        .collect();
        assert!(zipped.iter().any(|p| p == "ctypes/__init__.pyc"));
        assert!(zipped.iter().any(|p| p == "unittest/case.pyc"));
        assert!(
            !zipped
                .iter()
                .any(|p| p.starts_with("ctypes/test/") || p.starts_with("unittest/test/")),
            "package test suites are left out"
        );
        assert!(
            std::fs::read_dir(runtime.dir.join(&runtime.site_packages))
                .unwrap()
                .next()
                .is_none(),
            "site-packages starts empty"
        );

        // Moved somewhere else entirely, with a bare environment.
        let moved = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&runtime.dir)
            .arg(moved.path())
            .status()
            .unwrap();
        assert!(status.success());
        let root = moved.path().join("bundle");
        let probe = "import sys, ssl, sqlite3, ctypes, zlib, json\n\
                     maps = open('/proc/self/maps').read().split()\n\
                     libs = sorted({p for p in maps if '.so' in p and '/libc.so' not in p and '/ld-linux' not in p and '/libm.so' not in p})\n\
                     print(sys.prefix)\n\
                     print('\\n'.join(libs))";
        let output = std::process::Command::new(root.join(&runtime.python))
            .args(["-I", "-c", probe])
            .env_clear()
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), root.to_str().unwrap());
        for library in lines {
            assert!(
                library.starts_with(root.to_str().unwrap()),
                "loaded from outside the bundle: {library}"
            );
        }
        runtime
    }
}
