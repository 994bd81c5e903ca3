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

use crate::integrity::{self, State};
use crate::staging::Staged;
use sha2::{Digest, Sha256};
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

/// The host's apt sources and release, as read from its `/etc`.
struct HostSources {
    /// `VERSION_CODENAME` of `os-release` (`bookworm`).
    codename: Option<String>,
    /// Each sources file read, with its text.
    files: Vec<(PathBuf, String)>,
}

/// One `deb` source, in deb822 terms.
#[derive(Debug, PartialEq, Eq)]
struct Source {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    /// A keyring path or an inline key (its lines as in the file).
    signed_by: Option<String>,
    /// The architectures it is limited to, when it is.
    architectures: Option<Vec<String>>,
}

impl HostSources {
    fn read(etc: &Path) -> HostSources {
        let codename = std::fs::read_to_string(etc.join("os-release"))
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let value = line.strip_prefix("VERSION_CODENAME=")?;
                    let value = value.trim().trim_matches('"').to_string();
                    (!value.is_empty()).then_some(value)
                })
            });
        let apt = etc.join("apt");
        let mut paths = vec![apt.join("sources.list")];
        if let Ok(listing) = std::fs::read_dir(apt.join("sources.list.d")) {
            let mut more: Vec<PathBuf> = listing
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
                .collect();
            more.sort();
            paths.extend(more);
        }
        let files = paths
            .into_iter()
            .filter_map(|path| Some((path.clone(), std::fs::read_to_string(&path).ok()?)))
            .collect();
        HostSources { codename, files }
    }

    /// The suite a root is made from: the host's release codename, else the first suite
    /// its sources name.
    fn suite(&self) -> String {
        if let Some(codename) = &self.codename {
            return codename.clone();
        }
        self.all_sources()
            .into_iter()
            .find_map(|s| s.suites.into_iter().next())
            .unwrap_or_else(|| "unknown".into())
    }

    fn all_sources(&self) -> Vec<Source> {
        self.files
            .iter()
            .flat_map(|(path, text)| {
                if path.extension().is_some_and(|e| e == "sources") {
                    parse_deb822(text)
                } else {
                    parse_one_line(text)
                }
            })
            .collect()
    }

    /// The `deb` sources of the host's suite (and its `-updates`, `-security`, …) that may
    /// carry `arch`; others (a vendor's repository for one architecture) are left out.
    fn debian_sources(&self, arch: &str) -> Vec<Source> {
        let suite = self.suite();
        let ours = |s: &String| match &self.codename {
            Some(_) => *s == suite || s.starts_with(&format!("{suite}-")),
            None => true,
        };
        self.all_sources()
            .into_iter()
            .filter_map(|mut source| {
                source.suites.retain(ours);
                (!source.suites.is_empty()).then_some(source)
            })
            .filter(|s| s.architectures_allow(arch))
            .collect()
    }
}

impl Source {
    fn architectures_allow(&self, arch: &str) -> bool {
        self.architectures
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == arch))
    }

    fn deb822(&self, arch: &str) -> String {
        let mut text = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nArchitectures: {arch}\n",
            self.uris.join(" "),
            self.suites.join(" "),
            self.components.join(" ")
        );
        if let Some(signed_by) = &self.signed_by {
            // An inline key starts on the line after the field's name.
            let gap = if signed_by.starts_with('\n') { "" } else { " " };
            text.push_str(&format!("Signed-By:{gap}{signed_by}\n"));
        }
        text
    }
}

/// `deb [options] uri suite component…` lines (`deb-src` and comments skipped).
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let mut signed_by = None;
        let mut architectures = None;
        for option in options.split_whitespace() {
            if let Some(value) = option.strip_prefix("signed-by=") {
                signed_by = Some(value.to_string());
            } else if let Some(value) = option.strip_prefix("arch=") {
                architectures = Some(value.split(',').map(str::to_string).collect());
            }
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        sources.push(Source {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
            architectures,
        });
    }
    sources
}

/// deb822 stanzas (`Types: deb`, not `Enabled: no`). A field's continuation lines (an
/// inline `Signed-By` key) are kept as written.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n").flat_map(|s| s.split("\n\r\n")) {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push('\n');
                    value.push_str(line);
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = field("enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        if !enabled || !words("types").iter().any(|t| t == "deb") {
            continue;
        }
        let (uris, suites) = (words("uris"), words("suites"));
        if uris.is_empty() || suites.is_empty() {
            continue;
        }
        sources.push(Source {
            uris,
            suites,
            components: words("components"),
            signed_by: field("signed-by")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            architectures: field("architectures").map(|_| words("architectures")),
        });
    }
    sources
}

/// apt with a private configuration, state and download folder.
struct Apt {
    /// `APT_CONFIG`'s file.
    config: PathBuf,
    /// `-o` options for every call.
    options: Vec<String>,
    /// This run's download folder (fresh, so that apt lists every package to fetch).
    archives: Staged,
    arch: DebianArch,
}

impl Apt {
    /// Write the private configuration under `dir` (state and lists persist there, so a
    /// later root for another version updates only what changed) and make this run's
    /// download folder in `staging`.
    fn prepare(
        dir: &Path,
        staging: &Path,
        arch: DebianArch,
        sources: &[Source],
    ) -> Result<Apt, TargetPythonError> {
        let etc = dir.join("etc");
        for folder in [
            etc.join("apt.conf.d"),
            etc.join("preferences.d"),
            etc.join("sources.list.d"),
            dir.join("state/lists/partial"),
            dir.join("cache"),
            dir.join("log"),
        ] {
            std::fs::create_dir_all(&folder).map_err(io("create", &folder))?;
        }
        let write =
            |path: PathBuf, text: String| std::fs::write(&path, text).map_err(io("write", &path));
        // Read before the host's configuration: the host's parts and main file are never
        // read (their hooks could clean the host's cache, their settings pin the host's
        // architecture).
        let quoted = |p: &Path| p.display().to_string().replace('"', "");
        write(
            etc.join("apt.conf"),
            format!(
                "Dir::Etc::Parts \"{}\";\nDir::Etc::Main \"{}\";\n",
                quoted(&etc.join("apt.conf.d")),
                quoted(&etc.join("main.conf"))
            ),
        )?;
        write(etc.join("main.conf"), String::new())?;
        write(etc.join("sources.list"), String::new())?;
        write(
            etc.join("sources.list.d/debian.sources"),
            sources
                .iter()
                .map(|s| s.deb822(arch.debian))
                .collect::<Vec<_>>()
                .join("\n"),
        )?;
        write(dir.join("state/status"), String::new())?;
        let archives = Staged::dir_in(staging, ".archives-").map_err(io("create in", staging))?;
        let partial = archives.path().join("partial");
        std::fs::create_dir(&partial).map_err(io("create", &partial))?;

        let at = |p: PathBuf| p.display().to_string();
        let mut options = vec![
            format!("Dir::State={}", at(dir.join("state"))),
            format!("Dir::State::status={}", at(dir.join("state/status"))),
            format!("Dir::Cache={}", at(dir.join("cache"))),
            format!("Dir::Cache::Archives={}", at(archives.path().to_path_buf())),
            format!("Dir::Log={}", at(dir.join("log"))),
            format!("Dir::Etc::SourceList={}", at(etc.join("sources.list"))),
            format!("Dir::Etc::SourceParts={}", at(etc.join("sources.list.d"))),
            format!("Dir::Etc::Preferences={}", at(etc.join("preferences"))),
            format!(
                "Dir::Etc::PreferencesParts={}",
                at(etc.join("preferences.d"))
            ),
            format!("APT::Architecture={}", arch.debian),
            format!("APT::Architectures::={}", arch.debian),
            "APT::Install-Recommends=0".into(),
            "APT::Install-Suggests=0".into(),
            "Debug::NoLocking=1".into(),
            "Acquire::Languages=none".into(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=0".into(),
            // print-uris names each file with this hash, and downloads are checked with it.
            "Acquire::ForceHash=SHA256".into(),
            // No binary caches: 70 of the 120 MB of apt state per architecture, for about
            // 2 s more on a first build (measured on bookworm arm64). Keeping the lists
            // gzipped as well would save 30 MB more but cost 5 s on every parse.
            "Dir::Cache::pkgcache=".into(),
            "Dir::Cache::srcpkgcache=".into(),
        ];
        // As root, apt would download as `_apt`, who cannot write into a user's cache.
        if crate::is_root() {
            options.push("APT::Sandbox::User=root".into());
        }
        options.extend(host_proxies());
        Ok(Apt {
            config: etc.join("apt.conf"),
            options,
            archives,
            arch,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("APT_CONFIG", &self.config)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        for option in &self.options {
            command.arg("-o").arg(option);
        }
        command
    }

    /// Run `command`; its output, or apt's complaints as an error.
    fn run(
        &self,
        mut command: Command,
        step: &'static str,
        packages: &[String],
    ) -> Result<String, TargetPythonError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let output = command.output().map_err(io("run", Path::new(&program)))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A source that cannot be fetched is only a warning to `apt-get update`, which
        // would leave old or no lists behind: a failure here.
        let failed_fetch = stderr.lines().any(|l| l.contains("Failed to fetch"));
        if output.status.success() && !failed_fetch {
            return Ok(stdout);
        }
        let complaints: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| l.starts_with("E:") || l.starts_with("W:") || l.starts_with("Err:"))
            .collect();
        let message = match complaints.is_empty() {
            true => format!("`{program}` exited with {}", output.status),
            false => complaints.join("\n"),
        };
        Err(TargetPythonError::Apt {
            step,
            arch: self.arch.debian.to_string(),
            packages: packages.to_vec(),
            message,
        })
    }

    fn update(&self) -> Result<(), TargetPythonError> {
        let mut command = self.command("apt-get");
        command.args(["-q", "update"]);
        self.run(command, "update the package lists", &[]).map(drop)
    }

    /// The Python versions the suite has for this architecture (`python3.Y-minimal`).
    fn python_versions(&self) -> Result<Vec<String>, TargetPythonError> {
        let mut command = self.command("apt-cache");
        command.args(["pkgnames", "python3."]);
        let names = self.run(command, "list packages", &[])?;
        let mut versions: Vec<String> = names
            .lines()
            .filter_map(|n| n.strip_prefix("python")?.strip_suffix("-minimal"))
            .filter(|v| {
                v.strip_prefix("3.")
                    .is_some_and(|m| m.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(str::to_string)
            .collect();
        versions.sort_by_key(|v| v[2..].parse::<u32>().unwrap_or(0));
        versions.dedup();
        Ok(versions)
    }

    /// The files apt will download for `packages` and their closure, with the SHA256 the
    /// Packages index gives each.
    fn uris(&self, packages: &[String]) -> Result<Vec<(String, String)>, TargetPythonError> {
        let mut command = self.command("apt-get");
        command
            .args(["install", "--print-uris", "-qq", "-y"])
            .args(packages);
        let listing = self.run(command, "resolve", packages)?;
        let mut files = Vec::new();
        for line in listing.lines().filter(|l| l.starts_with('\'')) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(file), Some(hash)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some(sha256) = hash.strip_prefix("SHA256:") else {
                return Err(TargetPythonError::Apt {
                    step: "resolve",
                    arch: self.arch.debian.to_string(),
                    packages: packages.to_vec(),
                    message: format!("no SHA256 in the Packages index for {file} ({hash})"),
                });
            };
            files.push((file.to_string(), sha256.to_ascii_lowercase()));
        }
        if files.is_empty() {
            return Err(TargetPythonError::Apt {
                step: "resolve",
                arch: self.arch.debian.to_string(),
                packages: packages.to_vec(),
                message: "apt listed nothing to download".into(),
            });
        }
        Ok(files)
    }

    fn download(&self, packages: &[String]) -> Result<(), TargetPythonError> {
        let mut command = self.command("apt-get");
        command
            .args(["install", "--download-only", "-q", "-y"])
            .args(packages);
        self.run(command, "download", packages).map(drop)
    }
}

/// The host apt configuration's proxies (not read otherwise), as `-o` options.
fn host_proxies() -> Vec<String> {
    let Ok(output) = Command::new("apt-config")
        .args(["dump", "Acquire"])
        .env_remove("APT_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            let scheme = key.strip_prefix("Acquire::")?.strip_suffix("::Proxy")?;
            if !matches!(scheme, "http" | "https") {
                return None;
            }
            let value = value.trim_end_matches(';').trim_matches('"');
            Some(format!("{key}={value}"))
        })
        .collect()
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

/// The top-level folders a merged-/usr system keeps in `/usr`, linked from the top.
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib64"];

/// Make `root` a merged-/usr tree as Debian installs it: what packages put in `/lib`
/// (the loader, libc) moves to `/usr/lib` and `/lib` becomes a link to `usr/lib`, so every
/// path the loader and libraries are named by resolves. Where both hold a file, `/usr`'s
/// is kept (it is the newer layout).
fn merge_usr(root: &Path) -> std::io::Result<()> {
    for name in MERGED {
        let top = root.join(name);
        let usr = root.join("usr").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&top) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&usr)?;
        move_into(&top, &usr)?;
        std::fs::remove_dir_all(&top)?;
        std::os::unix::fs::symlink(format!("usr/{name}"), &top)?;
    }
    Ok(())
}

fn move_into(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        match std::fs::symlink_metadata(&target) {
            Err(_) => std::fs::rename(entry.path(), &target)?,
            Ok(there) if there.is_dir() && kind.is_dir() => move_into(&entry.path(), &target)?,
            Ok(_) => tracing::debug!(
                "`{}` is in both /{} and /usr: /usr's is kept",
                entry.file_name().to_string_lossy(),
                from.display()
            ),
        }
    }
    Ok(())
}

/// Turn each link to an absolute path into one relative to its folder, so that it points
/// into the root and not into the host (`usr/lib/python3.11/sitecustomize.py →
/// /etc/python3.11/sitecustomize.py`: the kernel follows a link without qemu's prefix).
fn relative_links(root: &Path) -> std::io::Result<()> {
    let mut links = Vec::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.map_err(std::io::Error::from)?;
        if item.file_type().is_symlink() {
            let target = std::fs::read_link(item.path())?;
            if target.is_absolute() {
                links.push((item.into_path(), target));
            }
        }
    }
    for (link, target) in links {
        let depth = link
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map_or(0, |p| p.components().count());
        let mut relative = PathBuf::new();
        for _ in 0..depth {
            relative.push("..");
        }
        relative.push(target.strip_prefix("/").unwrap_or(&target));
        std::fs::remove_file(&link)?;
        std::os::unix::fs::symlink(&relative, &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(codename: Option<&str>, files: &[(&str, &str)]) -> HostSources {
        HostSources {
            codename: codename.map(str::to_string),
            files: files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_hosts_suite_is_kept_from_both_formats_and_other_suites_and_arches_left_out() {
        let deb822 = "Types: deb deb-src\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://amd64-only.example\nSuites: bookworm\nComponents: main\nArchitectures: amd64\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let one_line = "deb [signed-by=/k.gpg arch=amd64,arm64] http://security.example bookworm-security main # why\ndeb-src http://src.example bookworm main\ndeb http://cloud.example cloud-sdk-bookworm main\n";
        let host = host(
            Some("bookworm"),
            &[
                ("/etc/apt/sources.list.d/debian.sources", deb822),
                ("/etc/apt/sources.list", one_line),
            ],
        );
        assert_eq!(host.suite(), "bookworm");
        let arm64 = host.debian_sources("arm64");
        assert_eq!(
            arm64,
            vec![
                Source {
                    uris: vec!["http://deb.debian.org/debian".into()],
                    suites: vec!["bookworm".into(), "bookworm-updates".into()],
                    components: vec!["main".into(), "contrib".into()],
                    signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
                    architectures: None,
                },
                Source {
                    uris: vec!["http://security.example".into()],
                    suites: vec!["bookworm-security".into()],
                    components: vec!["main".into()],
                    signed_by: Some("/k.gpg".into()),
                    architectures: Some(vec!["amd64".into(), "arm64".into()]),
                },
            ]
        );
        // For amd64 the amd64-only source comes too, its inline key kept line for line.
        let amd64 = host.debian_sources("amd64");
        assert_eq!(amd64.len(), 3);
        let written = amd64[1].deb822("amd64");
        assert!(
            written.contains("Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n"),
            "{written}"
        );
        assert!(arm64[0].deb822("arm64").contains("Architectures: arm64\n"));
    }

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

    #[test]
    fn top_level_folders_are_merged_into_usr_and_absolute_links_point_into_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("lib/aarch64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/aarch64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/python3.11")).unwrap();
        std::fs::create_dir_all(r.join("etc/python3.11")).unwrap();
        std::fs::write(r.join("lib/aarch64-linux-gnu/ld.so"), b"loader").unwrap();
        std::fs::write(r.join("lib/aarch64-linux-gnu/both"), b"old").unwrap();
        std::fs::write(r.join("usr/lib/aarch64-linux-gnu/both"), b"new").unwrap();
        std::os::unix::fs::symlink(
            "aarch64-linux-gnu/ld.so",
            r.join("lib/ld-linux-aarch64.so.1"),
        )
        .unwrap();
        std::fs::write(r.join("etc/python3.11/sitecustomize.py"), b"x = 1").unwrap();
        std::os::unix::fs::symlink(
            "/etc/python3.11/sitecustomize.py",
            r.join("usr/lib/python3.11/sitecustomize.py"),
        )
        .unwrap();

        merge_usr(r).unwrap();
        relative_links(r).unwrap();

        assert_eq!(
            std::fs::read_link(r.join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert_eq!(
            std::fs::read(r.join("lib/ld-linux-aarch64.so.1")).unwrap(),
            b"loader"
        );
        assert_eq!(
            std::fs::read(r.join("usr/lib/aarch64-linux-gnu/both")).unwrap(),
            b"new"
        );
        assert!(
            !r.join("bin").exists(),
            "no link for a folder no package had"
        );
        assert_eq!(
            std::fs::read_link(r.join("usr/lib/python3.11/sitecustomize.py")).unwrap(),
            Path::new("../../../etc/python3.11/sitecustomize.py")
        );
        assert_eq!(
            std::fs::read(r.join("usr/lib/python3.11/sitecustomize.py")).unwrap(),
            b"x = 1"
        );
    }
}
