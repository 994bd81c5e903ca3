//! The wheelhouse: the project's runtime dependencies, pinned with exact versions and
//! hashes (from the project's own lock, or resolved once), then installed once into a tree
//! that every upper tier reuses.
//!
//! ```text
//!  project lock ──select for this target──┐
//!  app wheel (+ extras) ──resolve──────────┴─► packages ──► hashed requirements (installer)
//!  hashed requirements + interpreter ──key──► cache_root()/wheelhouses/KEY/site (installed)
//!  installed tree + packages ──► what is carried ──► pylock.toml, SBOM
//! ```
//! Without a project lock, a `pylock.toml` published by an earlier run whose inputs (the
//! app's requirements, extras, interpreter) are unchanged is reused as it is: builds stay
//! reproducible until the user asks to re-resolve. The tree is made in a staging folder,
//! sealed with the digest of every file ([`crate::integrity`]) and renamed into place;
//! checked against those digests when reused.
//!
//! For a platform other than the build interpreter's ([`Foreign`]), the same code installs
//! the host wheelhouse's versions with the target's wheels: pinned to the host's versions
//! (a project lock selected for the target, or a resolution for the target constrained to
//! the host's pins), each pin keeping only the files that fit the target
//! ([`WheelTarget::fits`]), installed with `--only-binary :all:` for that platform. A pin
//! with no such wheel is refused by name: gradient does not cross-compile C extensions.

use crate::installer::Installer;
use crate::integrity::{self, State};
use crate::process::run_checked;
use crate::wheel_target::{compiled_content, wheel_is_pure, WheelTarget};
use crate::PythonError;
use gradient_core::{InterpreterFacts, LockedDependency};
use gradient_lock::{Environment, Lock, LockError, LockFile, LockFormat, Package};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::process::Command;

const MARKER: &str = "gradient-wheelhouse.json";

/// What to resolve.
pub struct WheelhouseRequest<'a> {
    pub python: &'a InterpreterFacts,
    pub installer: &'a Installer,
    pub cache_root: &'a Path,
    /// The app's own wheel: its Requires-Dist are what gets resolved.
    pub app_wheel: &'a Path,
    /// The app's normalised name, left out of the lock.
    pub app_name: &'a str,
    pub app_version: &'a str,
    pub extras: &'a [String],
    /// Dependency groups to bundle (from a project lock).
    pub groups: &'a [String],
    /// The app's Requires-Dist, part of the lock's inputs.
    pub requires_dist: &'a [String],
    /// The project's lock, when the build uses one: then nothing is resolved.
    pub locked: Option<ProjectLock<'a>>,
    /// The pylock.toml and hashed requirements an earlier run published (their text), reused
    /// as they are when their inputs match.
    pub previous_lock: Option<(String, String)>,
    /// Resolve and install only from this folder (no index).
    pub find_links: Option<&'a Path>,
    /// A scratch folder.
    pub work_dir: &'a Path,
    /// Install for another platform than `python`'s, with the host wheelhouse's versions.
    pub foreign: Option<Foreign<'a>>,
}

/// A wheelhouse for a platform the build interpreter does not run on.
#[derive(Clone, Copy)]
pub struct Foreign<'a> {
    pub target: WheelTarget,
    /// The build interpreter's own wheelhouse for the same app: its versions are installed.
    pub host: &'a Wheelhouse,
}

/// The project's own lock, already read and selected for the target.
pub struct ProjectLock<'a> {
    /// The lock's file name, as the published files mention it.
    pub file_name: &'a str,
    pub sha256: &'a str,
    /// What it installs for the target.
    pub packages: &'a [Package],
}

/// A locked, installed set of dependencies.
#[derive(Clone, Debug)]
pub struct Wheelhouse {
    /// The hashed requirements the installer read (every line with `--hash`).
    pub lock: String,
    /// A PEP 751 lock of exactly what the tree carries.
    pub pylock: String,
    /// The installed dependencies (without the app), as the installer left them.
    pub site: PathBuf,
    /// Every package carried, with the digest of the file it came from.
    pub packages: Vec<LockedDependency>,
    /// Whether the lock came from an earlier run, and the tree from the cache.
    pub lock_reused: bool,
    pub site_reused: bool,
    /// The platform it was installed for, when not the build interpreter's.
    pub target: Option<WheelTarget>,
}

impl Wheelhouse {
    /// Whether the installed tree holds no compiled code (no ELF file, no shared library,
    /// every wheel tagged for any platform): then one tree serves every platform.
    pub fn is_pure(&self) -> bool {
        compiled_content(&self.site).is_none()
    }
}

#[derive(Serialize, Deserialize)]
struct Marker {
    lock_sha256: String,
}

/// Why the dependencies could not be resolved or installed.
#[derive(Debug, thiserror::Error)]
pub enum WheelhouseError {
    #[error("failed to resolve the dependencies of {app} ({requirements})\n{message}")]
    Unresolvable {
        app: String,
        requirements: String,
        message: String,
    },
    #[error("failed to install the locked dependencies for {python}\n{message}")]
    Install { python: String, message: String },
    #[error("the dependency `{requirement}` carries credentials in its URL, which the published lock file and SBOMs would record")]
    CredentialsInUrl { requirement: String },
    #[error("the resolver's lock could not be read")]
    Lock(#[source] LockError),
    #[error(
        "the index serves no file of {package} {version} whose SHA-256 the project's lock gives"
    )]
    NoLockedFile { package: String, version: String },
    #[error("{package} {version} has no wheel for {platform} ({found}): gradient does not cross-compile C extensions")]
    NoWheelForPlatform {
        package: String,
        version: String,
        platform: gradient_core::Platform,
        /// What there is instead: `only an sdist`, or the wheels' names.
        found: String,
    },
    #[error("the app's own wheel `{wheel}` holds compiled code for this machine: gradient does not cross-compile it for {platform}")]
    AppNotPure {
        wheel: String,
        platform: gradient_core::Platform,
    },
    #[error("{package} would be {target} for {platform} but is {host} for this machine: one resolution must serve every platform")]
    PinsDiffer {
        package: String,
        host: String,
        target: String,
        platform: gradient_core::Platform,
    },
    #[error("cannot install wheels for {platform} with {python}: {reason}")]
    ForeignUnsupported {
        platform: gradient_core::Platform,
        python: String,
        reason: String,
    },
    #[error(transparent)]
    Python(#[from] PythonError),
}

impl gradient_core::Hint for WheelhouseError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            WheelhouseError::Unresolvable { .. } => "check [project] dependencies in pyproject.toml; the resolver's last words are above".into(),
            WheelhouseError::Install { message, .. } if message.to_lowercase().contains("hash mismatch") || message.contains("do not match the hashes") => "a file the index serves does not match the lock's hash: the lock or the index changed; make the lock again (`uv lock`) if the change is expected".into(),
            WheelhouseError::Install { .. } => "a dependency without a wheel for this interpreter must build from its sdist; install its build requirements (a compiler, headers) or pick versions that ship wheels".into(),
            WheelhouseError::CredentialsInUrl { .. } => "give the credentials to the installer instead (a netrc file, a keyring, or the index settings uv and pip read from the environment), and name the dependency without them".into(),
            WheelhouseError::Lock(error) => return gradient_core::Hint::hint(error),
            WheelhouseError::NoLockedFile { .. } => "the lock or the index changed; make the lock again (`pip-compile --generate-hashes`, `uv pip compile --generate-hashes`) if the change is expected".into(),
            WheelhouseError::NoWheelForPlatform { platform, found, .. } if found.contains("lock's digests") => format!("the lock was made for one platform: make it again with every platform's files (`uv lock`, or `uv pip compile --universal --generate-hashes`), or leave {platform} out of the build's platforms"),
            WheelhouseError::NoWheelForPlatform { platform, .. } => format!("pick a version that publishes manylinux wheels for {}, build on a {platform} machine, or leave {platform} out of the build's platforms", platform.machine()),
            WheelhouseError::AppNotPure { platform, .. } => format!("build the app's wheel on a {platform} machine, or leave {platform} out of the build's platforms"),
            WheelhouseError::PinsDiffer { .. } => "pin the dependency in the project's lock so that every platform resolves to it".into(),
            WheelhouseError::ForeignUnsupported { .. } => "build on a machine of the target platform".into(),
            WheelhouseError::Python(error) => return error.hint(),
        })
    }
}

/// The marker environment of `python`'s platform with these extras and groups bundled.
pub fn target_environment(
    python: &InterpreterFacts,
    extras: &[String],
    groups: &[String],
) -> Environment {
    environment(python, &python.platform_tag, extras, groups)
}

/// The marker environment of `python`'s version on `platform` with these extras and
/// groups bundled: what selects a project lock's packages for a foreign wheelhouse.
pub fn platform_environment(
    python: &InterpreterFacts,
    platform: gradient_core::Platform,
    extras: &[String],
    groups: &[String],
) -> Environment {
    environment(
        python,
        &format!("linux_{}", platform.machine()),
        extras,
        groups,
    )
}

fn environment(
    python: &InterpreterFacts,
    platform_tag: &str,
    extras: &[String],
    groups: &[String],
) -> Environment {
    let mut env = Environment::linux(&python.implementation, python.version, platform_tag);
    env.extras = extras
        .iter()
        .map(|e| gradient_core::normalize_name(e))
        .collect();
    env.dependency_groups = groups
        .iter()
        .map(|g| gradient_core::normalize_name(g))
        .collect();
    env
}

impl WheelhouseRequest<'_> {
    /// The hash of everything a resolution depends on.
    fn inputs_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.app_name,
            &self.python.implementation,
            &self.python.full_version(),
            &self.python.abi_tag,
            &self.python.platform_tag,
        ] {
            hasher.update(part);
            hasher.update([0]);
        }
        let mut requirements: Vec<&String> = self.requires_dist.iter().collect();
        requirements.sort();
        for r in requirements {
            hasher.update(r);
            hasher.update([1]);
        }
        let mut extras: Vec<&String> = self.extras.iter().collect();
        extras.sort();
        for e in extras {
            hasher.update(e);
            hasher.update([2]);
        }
        if let Some(folder) = self.find_links {
            hasher.update(folder.as_os_str().as_encoded_bytes());
        }
        // A foreign resolution follows the host's pins: it stands on the host's lock too.
        if let Some(foreign) = &self.foreign {
            hasher.update(format!(
                "\0{}\0glibc {}.{}\0",
                foreign.target.platform, foreign.target.glibc.0, foreign.target.glibc.1
            ));
            hasher.update(&foreign.host.lock);
        }
        hex::encode(hasher.finalize())
    }

    /// `cpython 3.11 (cp311, linux_x86_64)`, or `(cp311, linux/arm64, glibc 2.36)`.
    fn target(&self) -> String {
        let platform = match &self.foreign {
            Some(f) => format!(
                "{}, glibc {}.{}",
                f.target.platform, f.target.glibc.0, f.target.glibc.1
            ),
            None => self.python.platform_tag.clone(),
        };
        format!(
            "{} {} ({}, {platform})",
            self.python.implementation,
            self.python.short_version(),
            self.python.abi_tag,
        )
    }

    /// The marker environment the packages are selected for.
    fn environment(&self) -> Environment {
        match &self.foreign {
            Some(f) => {
                platform_environment(self.python, f.target.platform, self.extras, self.groups)
            }
            None => target_environment(self.python, self.extras, self.groups),
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PythonError {
    let path = path.to_path_buf();
    move |source| PythonError::Io {
        action,
        path,
        source,
    }
}

/// A pylock.toml from a resolver or an earlier run, read.
fn read_pylock(text: String, name: &str) -> Result<Lock, LockError> {
    let file = LockFile {
        path: PathBuf::from(name),
        format: LockFormat::Pylock,
    };
    Lock::parse(file, text)
}

/// Pin (from the project's lock, an earlier run's, or a resolution) and materialise the
/// dependencies.
pub async fn build_wheelhouse(
    request: WheelhouseRequest<'_>,
) -> Result<Wheelhouse, WheelhouseError> {
    // A direct-URL dependency is written into the lock file, which is published: refuse
    // one that would publish a password or token (shown masked here).
    if let Some(requirement) = request
        .requires_dist
        .iter()
        .find(|r| gradient_core::redact(r).as_ref() != r.as_str())
    {
        return Err(WheelhouseError::CredentialsInUrl {
            requirement: gradient_core::redact(requirement).into_owned(),
        });
    }
    std::fs::create_dir_all(request.work_dir).map_err(io("create", request.work_dir))?;
    if let Some(foreign) = &request.foreign {
        check_foreign(&request, foreign)?;
    }
    let env = request.environment();
    let select = |lock: &Lock| -> Result<Vec<Package>, LockError> {
        Ok(lock
            .select(Some(request.app_name), &env)?
            .into_iter()
            .cloned()
            .collect())
    };
    // An earlier run's resolution is reused as published: its pylock.toml (the files the
    // tree carried) and the hashed requirements the installer read, byte for byte, so that
    // the tree's cache key and the published files stay the same. One whose inputs changed,
    // or that does not serve this target any more, is resolved again.
    let inputs = request.inputs_hash();
    let reusable = match (&request.locked, &request.previous_lock) {
        // A foreign wheelhouse's earlier files are its own (kept by the driver): its inputs
        // name the target and the host's lock, so the host's are never taken for them.
        (None, Some((pylock, requirements))) => {
            read_pylock(pylock.clone(), "the published pylock.toml")
                .ok()
                .filter(|lock| lock.gradient_inputs.as_deref() == Some(inputs.as_str()))
                .filter(|lock| {
                    lock.gradient_requirements.as_deref()
                        == Some(hex::encode(Sha256::digest(requirements.as_bytes())).as_str())
                })
                .and_then(|lock| select(&lock).ok())
                .map(|packages| (packages, requirements.clone()))
        }
        _ => None,
    };
    let (packages, lock_reused, origin, previous_requirements) = match (&request.locked, reusable) {
        (Some(locked), _) => (
            name_locked_files(&request, locked.packages).await?,
            false,
            format!("from {} (sha256 {})", locked.file_name, locked.sha256),
            None,
        ),
        (None, Some((packages, requirements))) => (
            packages,
            true,
            "resolved by gradient".to_string(),
            Some(requirements),
        ),
        (None, None) => {
            let resolution = resolve(&request, &Resolve::App).await?;
            (
                select(&resolution).map_err(WheelhouseError::Lock)?,
                false,
                "resolved by gradient".to_string(),
                None,
            )
        }
    };
    let packages = match &request.foreign {
        Some(foreign) => target_files(&request, foreign, packages)?,
        None => packages,
    };
    let inputs = request.locked.is_none().then_some(inputs);
    let refs: Vec<&Package> = packages.iter().collect();
    let lock = previous_requirements.unwrap_or_else(|| {
        gradient_lock::requirements_text(
            &[
                format!(
                    "Locked dependencies of {} {} for {}, {origin}.",
                    request.app_name,
                    request.app_version,
                    request.target()
                ),
                "Install with: pip install --require-hashes --no-deps -r THIS_FILE".into(),
            ],
            &refs,
        )
    });

    let lock_sha256 = hex::encode(Sha256::digest(lock.as_bytes()));
    let key = &site_key(
        &lock_sha256,
        request.python,
        request.foreign.map(|f| f.target),
    );
    let parent = request.cache_root.join("wheelhouses");
    let dir = parent.join(key);
    let site = dir.join("site");
    let installed = std::fs::read(dir.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
        .is_some_and(|m| m.lock_sha256 == lock_sha256);
    // Tiers copy the installed files into their artifacts: they must be as installed.
    let state = integrity::check(&dir);
    let site_reused = installed && state == State::Intact;
    if !site_reused {
        match state {
            State::Damaged { .. } => tracing::warn!(
                "the cached wheelhouse `{}` is damaged: {state}; installing it again",
                dir.display()
            ),
            _ if dir.exists() => {
                tracing::warn!("rebuilding incomplete wheelhouse {}", dir.display())
            }
            _ => {}
        }
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        if dir.exists() {
            integrity::discard(&dir).map_err(io("remove", &dir))?;
        }
        let staging = crate::staging::Staged::dir_in(&parent, &format!(".{key}-"))
            .map_err(io("create", &parent))?;
        let staged_site = staging.path().join("site");
        let lock_path = request.work_dir.join("requirements.lock.txt");
        std::fs::write(&lock_path, &lock).map_err(io("write", &lock_path))?;
        install_locked(&request, &lock_path, &staged_site).await?;
        // Console scripts installed with --target carry this machine's paths: tiers make their own.
        let _ = std::fs::remove_dir_all(staged_site.join("bin"));
        let marker = serde_json::to_vec(&Marker {
            lock_sha256: lock_sha256.clone(),
        })
        .expect("marker serialises");
        std::fs::write(staging.path().join(MARKER), marker).map_err(io("write", staging.path()))?;
        integrity::seal(staging.path()).map_err(io("record the digests of", staging.path()))?;
        integrity::settle(staging, &dir).map_err(io("move into place", &dir))?;
    }
    let carried = gradient_lock::carried(&site, &refs);
    let pylock = gradient_lock::pylock_text(
        &gradient_lock::PylockHeader {
            comment: format!(
                "Exactly the dependencies {} {} carries for {}, {origin}.\nWritten by gradient (PEP 751).",
                request.app_name,
                request.app_version,
                request.target()
            ),
            environment: format!(
                "sys_platform == 'linux' and platform_machine == '{}' and implementation_name == '{}' and python_full_version == '{}'",
                env.platform_machine,
                env.implementation_name,
                request.python.full_version()
            ),
            requires_python: format!("=={}", request.python.full_version()),
            extras: env.extras.iter().cloned().collect(),
            groups: env.dependency_groups.iter().cloned().collect(),
            inputs: inputs.map(|i| (i, lock_sha256.clone())),
        },
        &carried,
    );
    Ok(Wheelhouse {
        lock,
        pylock,
        site,
        packages: carried
            .into_iter()
            .map(|c| LockedDependency {
                name: c.name,
                version: c.version,
                sha256: c.files.into_iter().map(|f| f.sha256).collect(),
            })
            .collect(),
        lock_reused,
        site_reused,
        target: request.foreign.map(|f| f.target),
    })
}

/// Refuse a foreign wheelhouse that cannot be made without compiling for the target: an
/// app wheel with compiled code, or an interpreter or glibc no manylinux wheel serves.
fn check_foreign(
    request: &WheelhouseRequest<'_>,
    foreign: &Foreign<'_>,
) -> Result<(), WheelhouseError> {
    let platform = foreign.target.platform;
    let wheel = request
        .app_wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !wheel_is_pure(&wheel) {
        return Err(WheelhouseError::AppNotPure { wheel, platform });
    }
    let reason = if request.python.implementation != "cpython" {
        Some(format!(
            "only CPython's wheel tags are known for other platforms, not {}'s",
            request.python.implementation
        ))
    } else {
        foreign.target.unsupported()
    };
    match reason {
        Some(reason) => Err(WheelhouseError::ForeignUnsupported {
            platform,
            python: request.python.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The packages of a foreign wheelhouse, each at the host's version (when the host carries
/// it) and with only the files that install on the target: its fitting wheels. A package
/// left with none is refused by name, before anything is installed.
fn target_files(
    request: &WheelhouseRequest<'_>,
    foreign: &Foreign<'_>,
    packages: Vec<Package>,
) -> Result<Vec<Package>, WheelhouseError> {
    let platform = foreign.target.platform;
    let mut fitting = Vec::with_capacity(packages.len());
    for package in packages {
        if let Some(host) = foreign
            .host
            .packages
            .iter()
            .find(|h| h.name == package.name)
        {
            if host.version != package.version {
                return Err(WheelhouseError::PinsDiffer {
                    package: package.name,
                    host: host.version.clone(),
                    target: package.version,
                    platform,
                });
            }
        }
        let (fit, misfit): (Vec<_>, Vec<_>) = package.files.iter().cloned().partition(|f| {
            f.kind == gradient_lock::FileKind::Wheel
                && f.name
                    .as_deref()
                    .is_some_and(|n| foreign.target.fits(n, request.python))
        });
        if fit.is_empty() {
            let wheels: Vec<&str> = misfit
                .iter()
                .filter(|f| f.kind == gradient_lock::FileKind::Wheel)
                .filter_map(|f| f.name.as_deref())
                .collect();
            let found = match (wheels.is_empty(), misfit.is_empty()) {
                (_, true) => "no file at all".to_string(),
                (true, false) => "only an sdist".to_string(),
                (false, false) => format!("only {}", wheels.join(", ")),
            };
            return Err(WheelhouseError::NoWheelForPlatform {
                package: package.name,
                version: package.version,
                platform,
                found,
            });
        }
        fitting.push(Package {
            files: fit,
            ..package
        });
    }
    Ok(fitting)
}

/// The cache key of the installed tree of a lock (by its digest) for `python`, on its own
/// machine or on `target`.
fn site_key(lock_sha256: &str, python: &InterpreterFacts, target: Option<WheelTarget>) -> String {
    let mut key = Sha256::new();
    // 2: installed by copy (earlier trees may share inodes with uv's cache).
    key.update("site-2");
    key.update(lock_sha256);
    key.update(python.executable.as_os_str().as_encoded_bytes());
    key.update(python.full_version());
    // The host's key stays as it was, so that its existing trees are still found.
    if let Some(target) = target {
        key.update(format!(
            "\0{}\0glibc {}.{}",
            target.platform, target.glibc.0, target.glibc.1
        ));
    }
    hex::encode(key.finalize())[..20].to_string()
}

/// Whether the dependencies of hashed requirements `lock` are installed in the cache for
/// `python` (for `plan`).
pub fn site_cached(lock: &str, python: &InterpreterFacts, cache_root: &Path) -> bool {
    let lock_sha256 = hex::encode(Sha256::digest(lock.as_bytes()));
    let dir = cache_root
        .join("wheelhouses")
        .join(site_key(&lock_sha256, python, None));
    integrity::is_sealed(&dir)
        && std::fs::read(dir.join(MARKER))
            .ok()
            .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
            .is_some_and(|m| m.lock_sha256 == lock_sha256)
}

/// What to resolve.
enum Resolve {
    /// The app's wheel with its extras, and everything it needs.
    App,
    /// Exactly these pins (`name==version` lines), nothing else: to learn their files.
    Pins(String),
}

/// The files of a hashed-requirements lock are known by digest only: the resolver names
/// them (URL, file name) for exactly the pinned versions, and each package keeps the files
/// whose digest the lock gives. A pin none of whose hashes the index serves is refused here,
/// before anything is installed.
async fn name_locked_files(
    request: &WheelhouseRequest<'_>,
    packages: &[Package],
) -> Result<Vec<Package>, WheelhouseError> {
    let unnamed: Vec<&Package> = packages
        .iter()
        .filter(|p| p.files.iter().any(|f| f.name.is_none()) && p.version_pinned())
        .collect();
    if unnamed.is_empty() {
        return Ok(packages.to_vec());
    }
    let pins: String = unnamed
        .iter()
        .map(|p| format!("{}=={}\n", p.name, p.version))
        .collect();
    let resolution = resolve(request, &Resolve::Pins(pins)).await?;
    let mut named = Vec::new();
    for package in packages {
        if !unnamed.iter().any(|u| u.name == package.name) {
            named.push(package.clone());
            continue;
        }
        let locked: Vec<&str> = package.files.iter().map(|f| f.sha256.as_str()).collect();
        let served: Vec<gradient_lock::LockedFile> = resolution
            .packages
            .iter()
            .filter(|r| r.name == package.name)
            .flat_map(|r| r.files.iter())
            .filter(|f| locked.contains(&f.sha256.as_str()))
            .cloned()
            .collect();
        if let Some(foreign) = &request.foreign {
            // A lock made on one machine may vouch for that machine's wheels alone: say that
            // the target's wheel exists, but not in the lock.
            let fits = |f: &gradient_lock::LockedFile| {
                f.name
                    .as_deref()
                    .is_some_and(|n| foreign.target.fits(n, request.python))
            };
            let unlocked: Vec<&str> = resolution
                .packages
                .iter()
                .filter(|r| r.name == package.name)
                .flat_map(|r| r.files.iter())
                .filter(|f| fits(f) && !locked.contains(&f.sha256.as_str()))
                .filter_map(|f| f.name.as_deref())
                .collect();
            if !served.iter().any(fits) && !unlocked.is_empty() {
                return Err(WheelhouseError::NoWheelForPlatform {
                    package: package.name.clone(),
                    version: package.version.clone(),
                    platform: foreign.target.platform,
                    found: format!(
                        "the lock's digests name none; the index's {} is not among them",
                        unlocked.join(", ")
                    ),
                });
            }
        }
        if served.is_empty() {
            return Err(WheelhouseError::NoLockedFile {
                package: package.name.clone(),
                version: package.version.clone(),
            });
        }
        named.push(Package {
            files: served,
            ..package.clone()
        });
    }
    Ok(named)
}

/// Resolve for the target interpreter into a lock: the app's dependencies, or the files of
/// given pins.
async fn resolve(request: &WheelhouseRequest<'_>, what: &Resolve) -> Result<Lock, WheelhouseError> {
    let extras = if request.extras.is_empty() {
        String::new()
    } else {
        format!("[{}]", request.extras.join(","))
    };
    let input_text = match what {
        Resolve::App => format!(
            "{}{extras} @ {}\n",
            request.app_name,
            file_url(request.app_wheel)
        ),
        Resolve::Pins(pins) => pins.clone(),
    };
    let no_deps = matches!(what, Resolve::Pins(_));
    let requirements = if request.requires_dist.is_empty() {
        "no dependencies".to_string()
    } else {
        request.requires_dist.join(", ")
    };
    let unresolvable = |err: PythonError| match err {
        PythonError::Command { tail, .. } if no_wheel_named(request, &tail).is_some() => {
            no_wheel_named(request, &tail).expect("just matched")
        }
        PythonError::Command { tail, .. } => WheelhouseError::Unresolvable {
            app: format!("{} {}", request.app_name, request.app_version),
            requirements: requirements.clone(),
            message: tail,
        },
        other => WheelhouseError::Python(other),
    };
    match request.installer {
        Installer::Uv(uv) => {
            let input = request.work_dir.join("requirements.in");
            std::fs::write(&input, &input_text).map_err(|source| PythonError::Io {
                action: "write",
                path: input.clone(),
                source,
            })?;
            let mut command = Command::new(uv);
            command
                .args([
                    "pip",
                    "compile",
                    "--quiet",
                    "--no-config",
                    "--format",
                    "pylock.toml",
                    "--no-header",
                    "--no-annotate",
                ])
                .arg("--python")
                .arg(&request.python.executable)
                .args(["--no-emit-package", request.app_name])
                .arg(&input)
                .env_clear()
                .envs(crate::isolated_env());
            if no_deps {
                command.arg("--no-deps");
            }
            command.args(foreign_args(request, false)?);
            if let Some(folder) = request.find_links {
                command.arg("--no-index").arg("--find-links").arg(folder);
            }
            let output = run_checked(&mut command, "resolve dependencies")
                .await
                .map_err(unresolvable)?;
            read_pylock(
                String::from_utf8_lossy(&output.stdout).into_owned(),
                "uv's resolution",
            )
            .map_err(WheelhouseError::Lock)
        }
        Installer::Pip => {
            let report = request.work_dir.join("pip-report.json");
            let mut command = Command::new(&request.python.executable);
            command
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--dry-run",
                    "--ignore-installed",
                    "--report",
                ])
                .arg(&report)
                .env_clear()
                .envs(crate::isolated_env());
            match what {
                Resolve::App => {
                    command.arg(input_text.trim_end());
                }
                Resolve::Pins(_) => {
                    let input = request.work_dir.join("pins.txt");
                    std::fs::write(&input, &input_text).map_err(|source| PythonError::Io {
                        action: "write",
                        path: input.clone(),
                        source,
                    })?;
                    command.arg("--no-deps").arg("-r").arg(input);
                }
            }
            command.args(foreign_args(request, false)?);
            if let Some(folder) = request.find_links {
                command.arg("--no-index").arg("--find-links").arg(folder);
            }
            run_checked(&mut command, "resolve dependencies")
                .await
                .map_err(unresolvable)?;
            lock_from_pip_report(&report, request.app_name)
        }
    }
}

/// The arguments that make the installer choose (`install`: and install only) the foreign
/// target's wheels, and (resolving) hold every package the host carries to its version.
fn foreign_args(
    request: &WheelhouseRequest<'_>,
    install: bool,
) -> Result<Vec<std::ffi::OsString>, WheelhouseError> {
    let Some(foreign) = &request.foreign else {
        return Ok(Vec::new());
    };
    let python = request.python;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    match request.installer {
        Installer::Uv(_) => {
            args.extend([
                "--python-platform".into(),
                foreign.target.uv_platform().into(),
            ]);
            args.extend(["--python-version".into(), python.full_version().into()]);
            if install {
                args.extend(["--only-binary".into(), ":all:".into()]);
            }
        }
        Installer::Pip => {
            // pip takes foreign tags only with binaries alone, whether resolving or installing.
            for tag in foreign.target.platform_tags() {
                args.extend(["--platform".into(), tag.into()]);
            }
            args.extend(["--implementation".into(), "cp".into()]);
            args.extend(["--python-version".into(), python.short_version().into()]);
            args.extend(["--abi".into(), python.abi_tag.clone().into()]);
            args.push("--only-binary=:all:".into());
            if !install {
                // Some pips take foreign tags only with --target, even for a dry run.
                args.push("--target".into());
                args.push(request.work_dir.join("pip-dry-run").into_os_string());
            }
        }
    }
    if !install {
        let pins: String = foreign
            .host
            .packages
            .iter()
            .map(|p| format!("{}=={}\n", p.name, p.version))
            .collect();
        let path = request.work_dir.join("host-pins.txt");
        std::fs::write(&path, pins).map_err(io("write", &path))?;
        args.extend(["--constraint".into(), path.into_os_string()]);
    }
    Ok(args)
}

/// pip's refusal to find a distribution for a foreign target, as the error that names the
/// package: with foreign tags pip considers wheels only, so a pin it cannot find has none.
fn no_wheel_named(request: &WheelhouseRequest<'_>, tail: &str) -> Option<WheelhouseError> {
    let foreign = request.foreign.as_ref()?;
    let rest = tail.split("No matching distribution found for ").nth(1)?;
    let requirement = rest.split_whitespace().next()?;
    let name = gradient_core::normalize_name(
        requirement
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .next()?,
    );
    let host = foreign.host.packages.iter().find(|p| p.name == name);
    Some(WheelhouseError::NoWheelForPlatform {
        version: host.map_or_else(|| requirement.to_string(), |p| p.version.clone()),
        package: name,
        platform: foreign.target.platform,
        found: "pip found no wheel that installs there".into(),
    })
}

/// A `file://` URL for an absolute `path`, every byte outside RFC 3986's unreserved set
/// percent-encoded: a temporary folder named `a#b` or `50%` must not become a fragment or a
/// broken escape.
fn file_url(path: &Path) -> String {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut url = String::from("file://");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// pip's installation report as a lock: each package with the one file pip chose.
fn lock_from_pip_report(report: &Path, app_name: &str) -> Result<Lock, WheelhouseError> {
    let text = std::fs::read_to_string(report).map_err(|source| PythonError::Io {
        action: "read",
        path: report.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut packages = Vec::new();
    for item in json["install"].as_array().into_iter().flatten() {
        let name =
            gradient_core::normalize_name(item["metadata"]["name"].as_str().unwrap_or_default());
        if name == gradient_core::normalize_name(app_name) {
            continue;
        }
        let info = &item["download_info"]["archive_info"];
        let sha256 = info["hashes"]["sha256"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                info["hash"]
                    .as_str()
                    .and_then(|h| h.strip_prefix("sha256="))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let url = item["download_info"]["url"].as_str().map(str::to_string);
        let file_name = url.as_deref().and_then(gradient_lock::url_file_name);
        packages.push(Package {
            version: item["metadata"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            marker: None,
            source: gradient_lock::Source::Index(None),
            files: vec![gradient_lock::LockedFile {
                kind: file_name
                    .as_deref()
                    .map_or(gradient_lock::FileKind::Sdist, gradient_lock::kind_of),
                name: file_name,
                url,
                size: None,
                sha256,
            }],
            line: 0,
            dependencies: Vec::new(),
            optional: Vec::new(),
            groups: Vec::new(),
            name,
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let file = LockFile {
        path: report.to_path_buf(),
        format: LockFormat::Pylock,
    };
    Ok(Lock::flat(file, text, packages))
}

async fn install_locked(
    request: &WheelhouseRequest<'_>,
    lock: &Path,
    target: &Path,
) -> Result<(), WheelhouseError> {
    let mut command = match request.installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            // Copies, not uv's default hard links into its own cache: the tree is checked
            // against its digests and installed again when damaged, which only repairs it
            // when its files share no bytes with the cache it is installed from (nor with
            // any tree another tool installed from there).
            c.args([
                "pip",
                "install",
                "--quiet",
                "--no-config",
                "--link-mode",
                "copy",
            ])
            .arg("--python")
            .arg(&request.python.executable);
            c
        }
        Installer::Pip => {
            let mut c = Command::new(&request.python.executable);
            c.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]);
            c
        }
    };
    command
        .args(foreign_args(request, true)?)
        .args(["--no-deps", "--require-hashes", "--target"])
        .arg(target)
        .arg("-r")
        .arg(lock)
        .env_clear()
        .envs(crate::isolated_env());
    if let Some(folder) = request.find_links {
        command.arg("--no-index").arg("--find-links").arg(folder);
    }
    run_checked(&mut command, "install the locked dependencies")
        .await
        .map(drop)
        .map_err(|err| match err {
            PythonError::Command { tail, .. } => WheelhouseError::Install {
                python: request.python.to_string(),
                message: tail,
            },
            other => WheelhouseError::Python(other),
        })
}

/// Copy an installed dependency tree (the wheelhouse's site-packages) to `to`, leaving out
/// console scripts (they name the build's interpreter), the installer's dot files and
/// compiled caches: each tier compiles its copy for the paths it will have on the target.
pub fn copy_site(from: &Path, to: &Path) -> Result<(), PythonError> {
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in walkdir::WalkDir::new(from)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            let top = e.depth() == 1;
            let name = e.file_name().to_string_lossy();
            !(top && (name == "bin" || name.starts_with('.'))) && name != "__pycache__"
        })
    {
        let entry = entry.map_err(|e| PythonError::Io {
            action: "read",
            path: from.to_path_buf(),
            source: e.into(),
        })?;
        let target = to.join(entry.path().strip_prefix(from).expect("inside the walk"));
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).map_err(io("create", &target))?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target).map_err(io("copy", entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_urls_escape_what_a_url_would_read_as_syntax() {
        assert_eq!(
            super::file_url(std::path::Path::new("/tmp/a#b/50%/c d/é.whl")),
            "file:///tmp/a%23b/50%25/c%20d/%C3%A9.whl"
        );
    }
}
