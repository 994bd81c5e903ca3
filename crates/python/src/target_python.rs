//! Debian's CPython for another Debian architecture, as a root folder: what a build for
//! linux/arm64 on an x86_64 host needs to know the target's interpreter (and, under
//! qemu-user, to run it).
//!
//! ```text
//!  host's apt sources (same suite) ─► private apt configuration and state in the cache
//!   ─► apt-get update, print-uris (SHA256 of each .deb from the Packages index),
//!      install --download-only ─► each .deb's sha256 checked again ─► dpkg-deb -x into a
//!      staging folder ─► /bin, /sbin, /lib, /lib64 merged into /usr, absolute links made
//!      relative ─► packages recorded, sealed ([`crate::integrity`]), renamed into place
//! ```
//! Nothing of the machine's apt or dpkg configuration is read for resolving or written:
//! apt runs with `APT_CONFIG` naming a private file, so the host's `apt.conf.d` (hooks
//! that delete `/var/cache/apt` included) is not read; the host's sources are copied, its
//! keyrings read where they are. No root is needed. The closure is kept whole (glibc
//! included): the caller decides what to bundle.
//!
//! Running it on another machine ([`DebianPython::command`]): qemu-user needs
//! `QEMU_LD_PREFIX=<root>` (or `-L <root>`) to find the loader the executables name
//! (`/lib/ld-linux-aarch64.so.1`); without it they do not start. The interpreter finds its
//! standard library from its own path (`sys.prefix` is `<root>/usr`). qemu tries an
//! absolute path in the root first and falls back to the host's, so what the root lacks
//! (CA certificates, `/etc/ld.so.cache`) is read from the host.

mod apt;
mod layout;
mod sources;

use crate::integrity::{self, State};
use crate::staging::Staged;
use apt::Apt;
use layout::{merge_usr, relative_links};
use sha2::{Digest, Sha256};
use sources::HostSources;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Debian architecture gradient can assemble a Python for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebianArch {
    /// Debian's name (`arm64`).
    pub debian: &'static str,
    /// What `platform.machine()` says there (`aarch64`).
    pub machine: &'static str,
    /// The multiarch folder under `/usr/lib` (`aarch64-linux-gnu`).
    pub triplet: &'static str,
    /// The dynamic loader every executable names, relative to the root.
    pub loader: &'static str,
}

/// The architectures supported, in the order error messages list them.
pub const DEBIAN_ARCHES: &[DebianArch] = &[
    DebianArch {
        debian: "arm64",
        machine: "aarch64",
        triplet: "aarch64-linux-gnu",
        loader: "lib/ld-linux-aarch64.so.1",
    },
    DebianArch {
        debian: "amd64",
        machine: "x86_64",
        triplet: "x86_64-linux-gnu",
        loader: "lib64/ld-linux-x86-64.so.2",
    },
];

/// The root's record of what it was made from, at its top (sealed with the rest).
pub const PACKAGES_FILE: &str = "gradient-debian-python.json";

/// Bumped whenever what goes into a root changes.
const FORMAT: &str = "debian-python-1";

/// A root holding Debian's CPython for one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianPython {
    /// The root folder: `usr/`, `etc/`, `lib → usr/lib`.
    pub root: PathBuf,
    /// `root/usr/bin/pythonX.Y`.
    pub executable: PathBuf,
    /// Every package unpacked: name, version, sha256 of its .deb; sorted by name.
    pub packages: Vec<(String, String, String)>,
    pub arch: DebianArch,
    /// The Debian suite the packages came from (`bookworm`).
    pub suite: String,
    /// Whether the root was found in the cache (no apt run).
    pub reused: bool,
}

impl DebianPython {
    /// The root's glibc version (`2.36`), from its `libc6` package: the newest a wheel or
    /// a bundled object for this target may need.
    pub fn glibc_version(&self) -> Option<String> {
        let (_, version, _) = self.packages.iter().find(|(name, _, _)| name == "libc6")?;
        let mut parts = version.split(['.', '-', '+', '~']);
        let (major, minor) = (parts.next()?, parts.next()?);
        (major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok())
            .then(|| format!("{major}.{minor}"))
    }

    /// The full version of the root's CPython (`3.11.2`), from its `pythonX.Y-minimal`
    /// package; `version` (`3.11`) when that package is not listed.
    pub fn python_version(&self, version: &str) -> String {
        let minimal = format!("python{version}-minimal");
        self.packages
            .iter()
            .find(|(name, _, _)| *name == minimal)
            .and_then(|(_, full, _)| {
                let upstream = full.split(['-', '+', '~']).next()?;
                upstream.starts_with(version).then(|| upstream.to_string())
            })
            .unwrap_or_else(|| version.to_string())
    }

    /// A root beside this one holding only its C library and loader (`lib/LOADER`,
    /// `lib/TRIPLET/libc.so.6` …), made once: what an emulated smoke test gives qemu-user as
    /// `QEMU_LD_PREFIX`, so that the artifact under test finds its own files and the libc
    /// its target provides, and nothing else of the target's distribution.
    pub fn loader_prefix(&self) -> std::io::Result<PathBuf> {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Named after the libc6 package it is taken from, and sealed as the root is: a root
        // made again from another libc6 gets another one, a damaged one is made again.
        let libc6 = self
            .packages
            .iter()
            .find(|(package, _, _)| package == "libc6")
            .map(|(_, _, sha256)| sha256.get(..16).unwrap_or(sha256).to_string())
            .unwrap_or_default();
        let prefix = self.root.with_file_name(format!("{name}.libc-{libc6}"));
        match integrity::check(&prefix) {
            State::Intact => return Ok(prefix),
            State::Unsealed if !prefix.exists() => {}
            _ => std::fs::remove_dir_all(&prefix)?,
        }
        let parent = self.root.parent().unwrap_or(Path::new("."));
        let staged = Staged::dir_in(parent, ".libc-")?;
        let multiarch = Path::new("usr/lib").join(self.arch.triplet);
        let mut copies = vec![(
            Path::new("usr").join(self.arch.loader),
            PathBuf::from(self.arch.loader),
        )];
        for soname in crate::runtime::GLIBC_FAMILY
            .iter()
            .chain(&["libnss_files.so.2", "libnss_dns.so.2"])
        {
            copies.push((
                multiarch.join(soname),
                Path::new("lib").join(self.arch.triplet).join(soname),
            ));
        }
        for (from, to) in copies {
            let from = self.root.join(from);
            if !from.exists() {
                continue;
            }
            let to = staged.path().join(to);
            std::fs::create_dir_all(to.parent().unwrap_or(staged.path()))?;
            std::fs::copy(&from, &to)?;
        }
        integrity::seal(staged.path())?;
        let mut staged = staged;
        match staged.persist(&prefix) {
            Ok(()) => Ok(prefix),
            // Another run made it first: theirs is as good.
            Err(_) if integrity::check(&prefix) == State::Intact => Ok(prefix),
            Err(error) => Err(error),
        }
    }

    /// Whether this host runs the root's executables only through an emulator.
    pub fn is_foreign(&self) -> bool {
        self.arch.machine != std::env::consts::ARCH
    }

    /// A command for the interpreter with `QEMU_LD_PREFIX` set to the root (qemu-user
    /// loads the loader and libraries from there; on this architecture's own hosts the
    /// variable is unused) and `-B`, bytecode writing off, as its first argument: a
    /// `__pycache__` written into the root would make it differ from its seal, and the
    /// next run would make it again. (An argument, not `PYTHONDONTWRITEBYTECODE`, which
    /// `-I` and `-E` ignore.)
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.executable);
        command.env("QEMU_LD_PREFIX", &self.root).arg("-B");
        command
    }
}

/// Why a Debian Python root could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum TargetPythonError {
    #[error("`{arch}` is not a Debian architecture gradient can assemble a Python for (supported: {})", supported.join(", "))]
    UnknownArch {
        arch: String,
        supported: Vec<String>,
    },
    #[error("`{version}` is not a Python version of the form 3.Y")]
    InvalidVersion { version: String },
    #[error("`apt-get` is not on PATH: Debian's CPython for {arch} is assembled with apt, which only a Debian-family host has")]
    NoApt { arch: String },
    #[error("no Debian package sources for {suite} in {}", looked.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", "))]
    NoSources { suite: String, looked: Vec<PathBuf> },
    #[error("Debian {suite} has no Python {version} for {arch}; it has {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    UnknownVersion {
        version: String,
        suite: String,
        arch: String,
        available: Vec<String>,
    },
    #[error("apt failed to {step} for {arch}{}:\n{message}", if packages.is_empty() { String::new() } else { format!(" ({})", packages.join(", ")) })]
    Apt {
        step: &'static str,
        arch: String,
        packages: Vec<String>,
        message: String,
    },
    #[error("`{}` does not have the sha256 of the Packages index ({expected}): it is {found}", file.display())]
    HashMismatch {
        file: PathBuf,
        expected: String,
        found: String,
    },
    #[error("`{}` could not be unpacked: {message}", deb.display())]
    Unpack { deb: PathBuf, message: String },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for TargetPythonError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            TargetPythonError::UnknownArch { .. } => "pass one of the supported architectures".into(),
            TargetPythonError::InvalidVersion { .. } => "ask for a version like 3.11".into(),
            TargetPythonError::NoApt { .. } => "build for another architecture on a Debian or Debian-derived host (or in such a container)".into(),
            TargetPythonError::NoSources { .. } => "add the suite's Debian archive to the host's apt sources (deb822 `.sources` or one-line `.list`)".into(),
            TargetPythonError::UnknownVersion { .. } => "build with one of the versions the suite has".into(),
            TargetPythonError::Apt { .. } => "check that the Debian mirror in the host's apt sources is reachable, then run again".into(),
            TargetPythonError::HashMismatch { .. } => "run again: the download is fetched anew; if it persists the mirror serves other files than its index lists".into(),
            TargetPythonError::Unpack { .. } | TargetPythonError::Io { .. } => return None,
        })
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TargetPythonError {
    let path = path.to_path_buf();
    move |source| TargetPythonError::Io {
        action,
        path,
        source,
    }
}

/// The root with Debian's CPython `version` for `arch` (Debian's name: `arm64`, `amd64`),
/// from the host's suite, made first if the cache has none intact. `progress` hears what
/// takes time (apt's steps, unpacking); a reused root says nothing.
pub fn debian_python_root(
    arch: &str,
    version: &str,
    cache_root: &Path,
    progress: &dyn Fn(&str),
) -> Result<DebianPython, TargetPythonError> {
    assemble(arch, version, cache_root, Path::new("/etc"), progress)
}

/// [`debian_python_root`] with the host's sources and release read from `etc`.
fn assemble(
    arch: &str,
    version: &str,
    cache_root: &Path,
    etc: &Path,
    progress: &dyn Fn(&str),
) -> Result<DebianPython, TargetPythonError> {
    let arch = *DEBIAN_ARCHES
        .iter()
        .find(|a| a.debian == arch)
        .ok_or_else(|| TargetPythonError::UnknownArch {
            arch: arch.to_string(),
            supported: DEBIAN_ARCHES.iter().map(|a| a.debian.to_string()).collect(),
        })?;
    let valid = version
        .strip_prefix("3.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(TargetPythonError::InvalidVersion {
            version: version.to_string(),
        });
    }
    let host = HostSources::read(etc);
    let suite = host.suite();
    let parent = cache_root.join("debian-python");
    let key = format!("{suite}-{}-python{version}", arch.debian);
    let entry = parent.join(&key);
    let found = |reused| cached(&entry, arch, &suite, version, reused);
    if let Some(python) = found(true) {
        return Ok(python);
    }
    if find_on_path("apt-get").is_none() {
        return Err(TargetPythonError::NoApt {
            arch: arch.debian.to_string(),
        });
    }
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    // apt's own locks are off (its state is private); this one keeps two runs from
    // sharing the lists and the download folder at once.
    let lock_path = parent.join(format!("apt-{suite}-{}.lock", arch.debian));
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    // Another run may have made it while this one waited.
    if let Some(python) = found(true) {
        return Ok(python);
    }
    if entry.exists() {
        progress(&format!(
            "{}: {}; making it again",
            entry.display(),
            integrity::check(&entry)
        ));
    }
    let sources = host.debian_sources(arch.debian);
    if sources.is_empty() {
        return Err(TargetPythonError::NoSources {
            suite,
            looked: host.files.iter().map(|(path, _)| path.clone()).collect(),
        });
    }
    let apt = Apt::prepare(
        &parent.join(format!("apt-{suite}-{}", arch.debian)),
        &parent,
        arch,
        &sources,
    )?;
    progress(&format!(
        "updating Debian {suite} package lists for {}",
        arch.debian
    ));
    apt.update()?;
    let available = apt.python_versions()?;
    if !available.iter().any(|v| v == version) {
        return Err(TargetPythonError::UnknownVersion {
            version: version.to_string(),
            suite,
            arch: arch.debian.to_string(),
            available,
        });
    }
    let wanted = [
        format!("python{version}-minimal"),
        format!("libpython{version}-minimal"),
        format!("libpython{version}-stdlib"),
    ];
    let expected = apt.uris(&wanted)?;
    progress(&format!(
        "downloading {} Debian packages for {}",
        expected.len(),
        arch.debian
    ));
    apt.download(&wanted)?;

    let staged = Staged::dir_in(&parent, &format!(".{key}-")).map_err(io("create in", &parent))?;
    progress(&format!(
        "unpacking {} packages into {}",
        expected.len(),
        entry.display()
    ));
    let mut packages = Vec::new();
    for (file, sha256) in &expected {
        let deb = apt.archives.path().join(file);
        let found = sha256_of(&deb).map_err(io("read", &deb))?;
        if found != *sha256 {
            return Err(TargetPythonError::HashMismatch {
                file: deb,
                expected: sha256.clone(),
                found,
            });
        }
        let (name, version) = deb_identity(&deb)?;
        unpack(&deb, staged.path())?;
        packages.push((name, version, found));
    }
    packages.sort();
    merge_usr(staged.path()).map_err(io("merge /lib and /bin into /usr in", staged.path()))?;
    relative_links(staged.path()).map_err(io("make links relative in", staged.path()))?;
    let record = Record {
        format: FORMAT.to_string(),
        arch: arch.debian.to_string(),
        suite: suite.clone(),
        version: version.to_string(),
        packages: packages.clone(),
    };
    let record_path = staged.path().join(PACKAGES_FILE);
    std::fs::write(
        &record_path,
        serde_json::to_vec_pretty(&record).expect("a record serialises"),
    )
    .map_err(io("write", &record_path))?;
    integrity::seal(staged.path()).map_err(io("seal", staged.path()))?;
    integrity::settle(staged, &entry).map_err(io("move into place", &entry))?;
    drop(lock);
    found(false).ok_or_else(|| TargetPythonError::Io {
        action: "read back",
        path: entry.clone(),
        source: std::io::Error::other("the root just made is not complete"),
    })
}

/// What [`PACKAGES_FILE`] holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    format: String,
    arch: String,
    suite: String,
    version: String,
    packages: Vec<(String, String, String)>,
}

/// The cached root at `entry` when it is intact and made for these settings.
fn cached(
    entry: &Path,
    arch: DebianArch,
    suite: &str,
    version: &str,
    reused: bool,
) -> Option<DebianPython> {
    let record: Record =
        serde_json::from_slice(&std::fs::read(entry.join(PACKAGES_FILE)).ok()?).ok()?;
    let fits = record.format == FORMAT
        && record.arch == arch.debian
        && record.suite == suite
        && record.version == version;
    let executable = entry.join(format!("usr/bin/python{version}"));
    if !fits || integrity::check(entry) != State::Intact || !executable.is_file() {
        return None;
    }
    Some(DebianPython {
        root: entry.to_path_buf(),
        executable,
        packages: record.packages,
        arch,
        suite: suite.to_string(),
        reused,
    })
}

/// `(Package, Version)` from the .deb's control file.
fn deb_identity(deb: &Path) -> Result<(String, String), TargetPythonError> {
    let output = Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .args(["Package", "Version"])
        .output()
        .map_err(io("run dpkg-deb on", deb))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    match (output.status.success(), field("Package"), field("Version")) {
        (true, Some(name), Some(version)) => Ok((name, version)),
        _ => Err(TargetPythonError::Unpack {
            deb: deb.to_path_buf(),
            message: format!(
                "no Package and Version in its control file: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

fn unpack(deb: &Path, into: &Path) -> Result<(), TargetPythonError> {
    let output = Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(into)
        .output()
        .map_err(io("run dpkg-deb on", deb))?;
    if output.status.success() {
        return Ok(());
    }
    Err(TargetPythonError::Unpack {
        deb: deb.to_path_buf(),
        message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_mirror_is_an_error_naming_the_step_and_apts_message() {
        if find_on_path("apt-get").is_none() {
            assert!(
                std::env::var_os("GRADIENT_REQUIRE_CROSS").is_none_or(|v| v != "1"),
                "apt-get is not on PATH (GRADIENT_REQUIRE_CROSS=1)"
            );
            eprintln!("skipped: apt-get is not on PATH (not a Debian-family host)");
            return;
        }
        let etc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(etc.path().join("apt")).unwrap();
        std::fs::write(
            etc.path().join("os-release"),
            "ID=debian\nVERSION_CODENAME=bookworm\n",
        )
        .unwrap();
        // Nothing listens on the discard port of the loopback address.
        std::fs::write(
            etc.path().join("apt/sources.list"),
            "deb http://127.0.0.1:9/debian bookworm main\n",
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let error = assemble("arm64", "3.11", cache.path(), etc.path(), &|_| {}).unwrap_err();
        let TargetPythonError::Apt {
            step, ref message, ..
        } = error
        else {
            panic!("{error}");
        };
        eprintln!("{error}");
        assert_eq!(step, "update the package lists");
        assert!(message.contains("127.0.0.1:9"), "{message}");
        assert!(!message.contains("PATH="), "{message}");
        assert!(gradient_core::Hint::hint(&error)
            .unwrap()
            .contains("reachable"));
        // No root, no staging left.
        let left: Vec<_> = std::fs::read_dir(cache.path().join("debian-python"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| {
                n.to_string_lossy().starts_with('.') || n.to_string_lossy().contains("python3")
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // No sources for the suite at all: said so, naming the files read.
        std::fs::write(
            etc.path().join("apt/sources.list"),
            "deb http://x.example trixie main\n",
        )
        .unwrap();
        let error = assemble("arm64", "3.11", cache.path(), etc.path(), &|_| {}).unwrap_err();
        assert!(
            matches!(error, TargetPythonError::NoSources { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("sources.list"), "{error}");
    }
}
