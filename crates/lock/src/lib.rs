//! A project's lock, read as gradient uses it: which file it is, the packages it pins (each
//! with its files and their hashes), which of them one target installs, whether the lock is
//! still current with `pyproject.toml`, and the `pylock.toml` a build publishes.
//!
//! ```text
//!  pylock.toml | pylock.*.toml | uv.lock | requirements (hashed)
//!        └──read──► Lock ──select(target env, extras, groups)──► [&Package]
//!                                     └──► hashed requirements (what the installer reads)
//!  installed tree + [&Package] ──carried──► [Carried] ──► published pylock.toml, SBOM
//! ```
//! Nothing here runs a tool or touches the network: the installer checks every file it
//! fetches against the hashes rendered here.

pub mod marker;
mod pylock;
mod render;
pub mod requirement;
mod requirements;
mod stale;
mod uv;
pub mod version;

pub use marker::{Environment, Marker};
pub use render::{carried, pylock_text, requirements_text, Carried, PylockHeader};
pub use stale::ProjectRequirements;

use std::path::{Path, PathBuf};

/// The lock formats gradient reads, in the order it looks for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockFormat {
    /// PEP 751: `pylock.toml` or `pylock.NAME.toml`.
    Pylock,
    /// uv's `uv.lock`.
    Uv,
    /// A pip requirements file with every requirement pinned (`==`) and hashed.
    Requirements,
}

impl std::fmt::Display for LockFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockFormat::Pylock => "PEP 751 lock",
            LockFormat::Uv => "uv lock",
            LockFormat::Requirements => "hashed requirements",
        })
    }
}

/// A lock file and its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockFile {
    pub path: PathBuf,
    pub format: LockFormat,
}

/// Where a pinned package comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A package index (its URL, when the lock names one).
    Index(Option<String>),
    /// A direct URL to an archive.
    Url(String),
    /// What gradient cannot install from a hash: a VCS checkout, a local folder.
    Unsupported(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Wheel,
    Sdist,
    Archive,
}

/// One file a lock pins, with its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedFile {
    pub kind: FileKind,
    /// The file name, when known (from the lock or its URL).
    pub name: Option<String>,
    pub url: Option<String>,
    pub size: Option<u64>,
    pub sha256: String,
}

/// A dependency edge of a graph lock (uv.lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub name: String,
    pub version: Option<String>,
    /// The source, when the name and version alone are ambiguous.
    pub source: Option<Source>,
    pub marker: Option<Marker>,
    pub extras: Vec<String>,
}

/// One pinned package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Normalised name.
    pub name: String,
    pub version: String,
    /// When it applies (flat locks).
    pub marker: Option<Marker>,
    pub source: Source,
    pub files: Vec<LockedFile>,
    /// The 1-based line of its entry in the lock.
    pub line: usize,
    /// Its dependencies, by extra and by group (graph locks).
    pub dependencies: Vec<Edge>,
    pub optional: Vec<(String, Vec<Edge>)>,
    pub groups: Vec<(String, Vec<Edge>)>,
}

/// A lock, read.
#[derive(Clone, Debug)]
pub struct Lock {
    pub file: LockFile,
    /// The lock's bytes' SHA-256 is taken by the caller; this is its text.
    pub text: String,
    pub requires_python: Option<String>,
    pub packages: Vec<Package>,
    /// The project's own entry in a graph lock (an index into `packages`).
    pub root: Option<usize>,
    /// The project this lock was made for, when it says.
    pub project: Option<String>,
    /// pylock.toml: the environments it was made for, and the groups it installs by default.
    pub environments: Vec<Marker>,
    pub default_groups: Vec<String>,
    /// uv.lock: the root's requirements as the lock recorded them (to judge staleness).
    pub recorded: Option<stale::Recorded>,
    /// A lock gradient published: the digest of the inputs it was resolved from, and of the
    /// hashed requirements the installer read.
    pub gradient_inputs: Option<String>,
    pub gradient_requirements: Option<String>,
    /// The extras and dependency groups the lock covers, when it says (pylock.toml's
    /// `extras` and `dependency-groups`).
    pub known_extras: Option<Vec<String>>,
    pub known_groups: Option<Vec<String>>,
}

/// Why a lock cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("failed to read the lock `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock `{}` does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("`{}` is not a lock gradient reads: {reason}", path.display())]
    NotALock { path: PathBuf, reason: String },
    #[error("the project has several PEP 751 locks ({}) and none named `pylock.toml`", names.join(", "))]
    Ambiguous { names: Vec<String> },
    #[error("`{}` was made for the project `{locked}`, not `{project}`", path.display())]
    OtherProject {
        path: PathBuf,
        locked: String,
        project: String,
    },
    #[error("`{}` was not made for {target}: none of its environments ({}) holds there", path.display(), environments.join("; "))]
    NotForTarget {
        path: PathBuf,
        target: String,
        environments: Vec<String>,
    },
    #[error("{}:{line}: `{package}` {version} comes from {what}, which gradient cannot install by hash", path.display())]
    UnsupportedSource {
        path: PathBuf,
        line: usize,
        package: String,
        version: String,
        what: String,
    },
    #[error("{}:{line}: the lock pins no file with a SHA-256 hash for `{package}` {version}", path.display())]
    NoHashedFile {
        path: PathBuf,
        line: usize,
        package: String,
        version: String,
    },
    #[error("{}:{line}: the lock has only wheels of `{package}` {version}, none for {target}, and no sdist", path.display())]
    NoWheelForTarget {
        path: PathBuf,
        line: usize,
        package: String,
        version: String,
        target: String,
    },
    #[error("`{}` pins {package} at {} for {target}: its markers overlap", path.display(), versions.join(" and "))]
    TwoVersions {
        path: PathBuf,
        package: String,
        versions: Vec<String>,
        target: String,
    },
    #[error("{}:{line}: `{package}` is named with credentials in its URL, which the published lock and SBOMs would record", path.display())]
    CredentialsInUrl {
        path: PathBuf,
        line: usize,
        package: String,
    },
    #[error("`{}` names `{package}` as a dependency but pins no version of it", path.display())]
    Dangling { path: PathBuf, package: String },
    #[error("`{}` was made for {formats}; gradient reads version {supported}", path.display())]
    Version {
        path: PathBuf,
        formats: String,
        supported: String,
    },
    #[error("the lock `{}` does not cover the {name} the build bundles", path.display())]
    UnknownGroup { path: PathBuf, name: String },
}

impl gradient_core::Hint for LockError {
    fn hint(&self) -> Option<String> {
        let remake = "make the lock again with the tool that wrote it (`uv lock`, `uv export --format pylock.toml --no-dev -o pylock.toml`), or build without it: --no-lock";
        Some(match self {
            LockError::Read { .. } => return None,
            LockError::Missing { .. } => "check the path: --lock reads it from the current folder, `[tool.gradient] lock` from the project folder".into(),
            LockError::Invalid { .. } | LockError::NotALock { .. } | LockError::Version { .. } | LockError::Dangling { .. } => remake.into(),
            LockError::Ambiguous { .. } => "name the one to use: --lock FILE, or `lock = \"pylock.NAME.toml\"` under [tool.gradient]".into(),
            LockError::OtherProject { .. } => "a lock belongs to the project it was made in: lock this project (`uv lock`), or name its own lock with --lock".into(),
            LockError::NotForTarget { .. } => "lock for this platform too (uv: `[tool.uv] environments`), or build without the lock: --no-lock".into(),
            LockError::UnsupportedSource { .. } => "publish the dependency to an index (or a URL of its archive) and lock it from there; only archives with hashes can be checked".into(),
            LockError::NoHashedFile { .. } => "make the lock with hashes (uv always writes them; `pip-compile --generate-hashes`, `uv pip compile --generate-hashes`)".into(),
            LockError::NoWheelForTarget { .. } => "lock on a machine (or with `[tool.uv] required-environments`) that includes this platform, or pick a version that ships a wheel or an sdist for it".into(),
            LockError::TwoVersions { .. } => "give the two entries markers that exclude each other, or make the lock again".into(),
            LockError::CredentialsInUrl { .. } => "give the credentials to the installer (a netrc file, a keyring, the index settings uv and pip read from the environment) and lock the URL without them".into(),
            LockError::UnknownGroup { .. } => "lock with that extra or group (`uv lock` records every extra; `uv export --all-extras`), or leave it out of `[tool.gradient] extras`".into(),
        })
    }
}

/// File names a PEP 751 lock may have (`pylock.toml`, `pylock.NAME.toml`).
fn is_pylock_name(name: &str) -> bool {
    name == "pylock.toml"
        || name
            .strip_prefix("pylock.")
            .and_then(|n| n.strip_suffix(".toml"))
            .is_some_and(|middle| !middle.is_empty() && !middle.contains('.'))
}

/// Requirements files gradient takes for a lock when every line in them is hashed.
const REQUIREMENTS_NAMES: [&str; 3] = [
    "requirements.lock",
    "requirements.lock.txt",
    "requirements.txt",
];

/// The lock files in `root`, in the order gradient prefers them. A requirements file counts
/// only when it is hashed throughout.
pub fn discover(root: &Path) -> Result<Vec<LockFile>, LockError> {
    let mut found = Vec::new();
    let mut pylocks: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| is_pylock_name(n))
                .collect()
        })
        .unwrap_or_default();
    pylocks.sort();
    if pylocks.iter().any(|n| n == "pylock.toml") {
        pylocks.retain(|n| n == "pylock.toml");
    } else if pylocks.len() > 1 {
        return Err(LockError::Ambiguous { names: pylocks });
    }
    found.extend(pylocks.into_iter().map(|n| LockFile {
        path: root.join(n),
        format: LockFormat::Pylock,
    }));
    if root.join("uv.lock").is_file() {
        found.push(LockFile {
            path: root.join("uv.lock"),
            format: LockFormat::Uv,
        });
    }
    for name in REQUIREMENTS_NAMES {
        let path = root.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|text| requirements::is_hashed_lock(&text)) {
            found.push(LockFile {
                path,
                format: LockFormat::Requirements,
            });
            break;
        }
    }
    Ok(found)
}

/// The format of a lock named explicitly, from its file name.
pub fn named(path: &Path) -> Result<LockFile, LockError> {
    if !path.is_file() {
        return Err(LockError::Missing {
            path: path.to_path_buf(),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = if is_pylock_name(&name) {
        LockFormat::Pylock
    } else if name == "uv.lock" {
        LockFormat::Uv
    } else {
        LockFormat::Requirements
    };
    Ok(LockFile {
        path: path.to_path_buf(),
        format,
    })
}

impl Package {
    /// Whether it is pinned to a version (not a direct URL).
    pub fn version_pinned(&self) -> bool {
        !matches!(self.source, Source::Url(_)) && !self.version.is_empty()
    }
}

impl Lock {
    /// A flat lock of `packages` that says nothing else: no project, environments, groups
    /// or recorded inputs (hashed requirements; an installer's report).
    pub fn flat(file: LockFile, text: String, packages: Vec<Package>) -> Lock {
        Lock {
            file,
            text,
            requires_python: None,
            packages,
            root: None,
            project: None,
            environments: Vec::new(),
            default_groups: Vec::new(),
            recorded: None,
            gradient_inputs: None,
            gradient_requirements: None,
            known_extras: None,
            known_groups: None,
        }
    }

    /// Read and parse `file`.
    pub fn read(file: &LockFile) -> Result<Lock, LockError> {
        let text = std::fs::read_to_string(&file.path).map_err(|source| LockError::Read {
            path: file.path.clone(),
            source,
        })?;
        Lock::parse(file.clone(), text)
    }

    pub fn parse(file: LockFile, text: String) -> Result<Lock, LockError> {
        match file.format {
            LockFormat::Pylock => pylock::parse(file, text),
            LockFormat::Uv => uv::parse(file, text),
            LockFormat::Requirements => requirements::parse(file, text),
        }
    }

    /// The packages `env` installs for the app `app` (which is itself left out), in name
    /// order; extras and groups come from `env`.
    /// `app` is `None` when the project does not say its name (a `setup.py` project): then
    /// whose lock it is cannot be checked.
    pub fn select(&self, app: Option<&str>, env: &Environment) -> Result<Vec<&Package>, LockError> {
        let app = app.map(gradient_core::normalize_name);
        if let (Some(locked), Some(app)) = (&self.project, &app) {
            if locked != app {
                return Err(LockError::OtherProject {
                    path: self.file.path.clone(),
                    locked: locked.clone(),
                    project: app.clone(),
                });
            }
        }
        let (major, minor, micro) = parse_triple(&env.python_full_version);
        if let Some(spec) = &self.requires_python {
            if gradient_core::python_satisfies(spec, (major, minor, micro)) == Some(false) {
                return Err(LockError::NotForTarget {
                    path: self.file.path.clone(),
                    target: describe(env),
                    environments: vec![format!("requires-python {spec}")],
                });
            }
        }
        for (wanted, known, what) in [
            (&env.extras, &self.known_extras, "extra"),
            (&env.dependency_groups, &self.known_groups, "group"),
        ] {
            let missing = known
                .as_ref()
                .and_then(|known| wanted.iter().find(|w| !known.contains(w)));
            if let Some(missing) = missing {
                return Err(LockError::UnknownGroup {
                    path: self.file.path.clone(),
                    name: format!("{what} `{missing}`"),
                });
            }
        }
        if !self.environments.is_empty() && !self.environments.iter().any(|m| m.evaluate(env)) {
            return Err(LockError::NotForTarget {
                path: self.file.path.clone(),
                target: describe(env),
                environments: marker_texts(&self.text, self.environments.len()),
            });
        }
        let mut chosen: Vec<&Package> = match self.root {
            Some(root) => uv::walk(self, root, env)?,
            None => self
                .packages
                .iter()
                .filter(|p| Some(&p.name) != app.as_ref())
                .filter(|p| p.marker.as_ref().is_none_or(|m| m.evaluate(env)))
                .collect(),
        };
        chosen.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        chosen.dedup_by(|a, b| a.name == b.name && a.version == b.version);
        for pair in chosen.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(LockError::TwoVersions {
                    path: self.file.path.clone(),
                    package: pair[0].name.clone(),
                    versions: vec![pair[0].version.clone(), pair[1].version.clone()],
                    target: describe(env),
                });
            }
        }
        for package in &chosen {
            self.check(package, env)?;
        }
        Ok(chosen)
    }

    /// What a selected package must be before any of it becomes the installer's input: from
    /// an index or a URL, with hashes, a file for this target, and nothing in its name,
    /// version, digests or URLs that could read as an installer option.
    fn check(&self, package: &Package, env: &Environment) -> Result<(), LockError> {
        let unsupported = |what: String| LockError::UnsupportedSource {
            path: self.file.path.clone(),
            line: package.line,
            package: package.name.clone(),
            version: package.version.clone(),
            what,
        };
        if let Source::Unsupported(what) = &package.source {
            return Err(unsupported(what.clone()));
        }
        if package.files.is_empty() {
            return Err(LockError::NoHashedFile {
                path: self.file.path.clone(),
                line: package.line,
                package: package.name.clone(),
                version: package.version.clone(),
            });
        }
        // Only wheels, none for this platform: say so, rather than let the installer
        // fetch another file and refuse its hash.
        let named: Vec<&str> = package
            .files
            .iter()
            .filter_map(|f| f.name.as_deref())
            .collect();
        if named.len() == package.files.len()
            && named.iter().all(|n| n.ends_with(".whl"))
            && !named.iter().any(|n| render::wheel_fits(n, env))
        {
            return Err(LockError::NoWheelForTarget {
                path: self.file.path.clone(),
                line: package.line,
                package: package.name.clone(),
                version: package.version.clone(),
                target: describe(env),
            });
        }
        let urls = package.files.iter().filter_map(|f| f.url.as_deref());
        let index = match &package.source {
            Source::Index(Some(url)) | Source::Url(url) => Some(url.as_str()),
            _ => None,
        };
        let urls: Vec<&str> = urls.chain(index).collect();
        if urls.iter().any(|u| gradient_core::redact(u).as_ref() != *u) {
            return Err(LockError::CredentialsInUrl {
                path: self.file.path.clone(),
                line: package.line,
                package: package.name.clone(),
            });
        }
        // What becomes a line of the installer's requirements must be what it claims to
        // be: a hostile lock must not smuggle options (`--index-url`, `-r FILE`) in.
        let invalid = |message: String| LockError::Invalid {
            path: self.file.path.clone(),
            line: package.line,
            column: 1,
            message,
        };
        if !gradient_core::is_valid_name(&package.name) {
            return Err(invalid(
                "a package name that is not a valid project name".into(),
            ));
        }
        if !matches!(package.source, Source::Url(_))
            && version::Version::parse(&package.version).is_none()
        {
            return Err(invalid(format!(
                "`{}` has a version that is not a PEP 440 version",
                package.name
            )));
        }
        if urls
            .iter()
            .any(|u| u.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(invalid(format!(
                "`{}` has a URL with spaces or control characters",
                package.name
            )));
        }
        if package
            .files
            .iter()
            .any(|f| f.sha256.len() != 64 || !f.sha256.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(invalid(format!(
                "`{}` has a sha256 that is not 64 hexadecimal digits",
                package.name
            )));
        }
        Ok(())
    }
}

/// `(3, 11, 7)` from `3.11.7` (missing parts are 0).
fn parse_triple(text: &str) -> (u32, u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// `cpython 3.11.7 on linux/x86_64`.
pub fn describe(env: &Environment) -> String {
    format!(
        "{} {} on {}/{}",
        env.implementation_name, env.python_full_version, env.sys_platform, env.platform_machine
    )
}

/// The environment markers of a pylock.toml as written (for messages).
fn marker_texts(text: &str, count: usize) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Environments {
        #[serde(default)]
        environments: Vec<String>,
    }
    toml::from_str::<Environments>(text)
        .map(|e| e.environments)
        .unwrap_or_else(|_| vec![format!("{count} markers")])
}

/// The byte offsets where each line of a text starts, to name lines without rescanning.
pub(crate) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// A TOML error as an [`LockError::Invalid`] naming its line.
pub(crate) fn toml_error(file: &LockFile, text: &str, err: toml::de::Error) -> LockError {
    let (line, column) = gradient_core::line_column(text, err.span().map_or(0, |s| s.start));
    LockError::Invalid {
        path: file.path.clone(),
        line,
        column,
        message: err.message().trim().to_string(),
    }
}

/// The file name at the end of a URL (percent escapes left as they are).
pub fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['#', '?']).next()?;
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// The kind of a distribution file by its name.
pub fn kind_of(name: &str) -> FileKind {
    if name.ends_with(".whl") {
        FileKind::Wheel
    } else {
        FileKind::Sdist
    }
}

/// A marker from a lock, or an [`LockError::Invalid`] naming its line.
pub(crate) fn lock_marker(file: &LockFile, line: usize, text: &str) -> Result<Marker, LockError> {
    Marker::parse(text).map_err(|message| LockError::Invalid {
        path: file.path.clone(),
        line,
        column: 1,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pylock_names_follow_pep_751() {
        assert!(is_pylock_name("pylock.toml"));
        assert!(is_pylock_name("pylock.dev.toml"));
        assert!(!is_pylock_name("pylock.a.b.toml"));
        assert!(!is_pylock_name("pylock..toml"));
        assert!(!is_pylock_name("mylock.toml"));
    }

    #[test]
    fn discovery_prefers_pylock_then_uv_then_hashed_requirements() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("requirements.txt"), "click==8.1.7\n").unwrap();
        assert!(
            discover(root).unwrap().is_empty(),
            "unhashed requirements are no lock"
        );
        std::fs::write(
            root.join("requirements.txt"),
            "click==8.1.7 --hash=sha256:aa\n",
        )
        .unwrap();
        std::fs::write(root.join("uv.lock"), "version = 1\n").unwrap();
        std::fs::write(root.join("pylock.a.toml"), "").unwrap();
        let formats: Vec<LockFormat> = discover(root).unwrap().iter().map(|f| f.format).collect();
        assert_eq!(
            formats,
            [LockFormat::Pylock, LockFormat::Uv, LockFormat::Requirements]
        );
        std::fs::write(root.join("pylock.b.toml"), "").unwrap();
        assert!(matches!(discover(root), Err(LockError::Ambiguous { .. })));
        std::fs::write(root.join("pylock.toml"), "").unwrap();
        assert_eq!(discover(root).unwrap()[0].path, root.join("pylock.toml"));
    }
}
