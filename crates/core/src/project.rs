//! The project model: `pyproject.toml`'s `[build-system]`, `[project]` (PEP 621) and our own
//! `[tool.gradient]` table, read once with positions so that every error names
//! `file:line:column`.
//!
//! A folder with only a `setup.py` is a legacy setuptools project: it gets the PEP 517
//! fallback backend, and its name and version come from the metadata the backend writes.

use crate::container::ContainerConfig;
use crate::ospackage::{PackageConfig, PackageFormat, ServiceConfig};
use crate::runtime::{runtime_setting, RuntimeConfig};
use crate::text::{one_line, ONE_LINE_HINT};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The file every modern Python project has.
pub const PYPROJECT: &str = "pyproject.toml";

/// What PEP 517 says a frontend uses when a project names no backend.
const LEGACY_BACKEND: &str = "setuptools.build_meta:__legacy__";
const LEGACY_REQUIRES: &str = "setuptools>=40.8.0";

/// A Python project as gradient sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// The project folder (absolute).
    pub root: PathBuf,
    /// Whether pyproject.toml has a `[project]` table. Without one (a `setup.py` project,
    /// poetry 1) the backend alone decides the metadata, and there is nothing to check it by.
    pub declares_metadata: bool,
    /// `root/pyproject.toml`, when the project has one.
    pub pyproject: Option<PathBuf>,
    /// The name as written; `None` when the backend decides it (legacy `setup.py`).
    pub name: Option<String>,
    /// The version as written; `None` when dynamic.
    pub version: Option<String>,
    pub dynamic: Vec<String>,
    pub description: Option<String>,
    pub requires_python: Option<String>,
    pub dependencies: Vec<String>,
    pub optional_dependencies: BTreeMap<String, Vec<String>>,
    pub scripts: BTreeMap<String, String>,
    pub gui_scripts: BTreeMap<String, String>,
    /// `[project.urls]`: label → URL.
    pub urls: BTreeMap<String, String>,
    pub build_system: BuildSystem,
    pub config: Config,
}

/// The PEP 517/518 `[build-system]` table, with the legacy fallback filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSystem {
    pub requires: Vec<String>,
    /// `module` or `module:object`.
    pub backend: String,
    /// In-tree backend folders, relative to the project root.
    pub backend_path: Vec<String>,
    /// True when the project named no backend and gets setuptools' legacy one.
    pub implicit: bool,
}

/// `[tool.gradient]`: gradient's own settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The build interpreter: a version (`3.11`) or a path.
    pub python: Option<String>,
    /// The console script an artifact runs by default, when the project has several.
    pub entry: Option<String>,
    /// The smoke test every tier runs.
    pub smoke: Option<SmokeConfig>,
    /// Optional dependency groups (`[project.optional-dependencies]`) to bundle.
    #[serde(default)]
    pub extras: Vec<String>,
    /// Dependency groups a lock records, to bundle besides its default ones.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The lock to take versions from, relative to the project folder (default: the first
    /// of `pylock.toml`, `uv.lock`, a hashed `requirements.txt`).
    pub lock: Option<String>,
    /// The platforms to build for (`["linux/amd64", "linux/arm64"]`); `--platform` wins.
    /// Default: the host's.
    pub platforms: Option<Vec<crate::Platform>>,
    /// `[tool.gradient.zipapp]`.
    #[serde(default)]
    pub zipapp: ZipappConfig,
    /// `[tool.gradient.frozen]`.
    #[serde(default)]
    pub frozen: FrozenConfig,
    /// `runtime = "cpython-….tar.gz"`, or the `[tool.gradient.runtime]` table.
    #[serde(default, deserialize_with = "runtime_setting")]
    pub runtime: RuntimeConfig,
    /// `[tool.gradient.container]`.
    #[serde(default)]
    pub container: ContainerConfig,
    /// `[tool.gradient.deb]`.
    #[serde(default)]
    pub deb: PackageConfig,
    /// `[tool.gradient.rpm]`.
    #[serde(default)]
    pub rpm: PackageConfig,
    /// `[tool.gradient.service]`: a systemd service in the OS packages.
    pub service: Option<ServiceConfig>,
    /// `[tool.gradient.publish]`: where `gradient publish` and `build --publish` send the
    /// release (their flags win).
    #[serde(default)]
    pub publish: PublishConfig,
}

/// `[tool.gradient.publish]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The registry repository images go to (`HOST[:PORT]/PATH`).
    pub image: Option<String>,
    /// The package index's upload URL for the wheel and sdist.
    pub index: Option<String>,
    /// Signing key files, relative to the project folder (or absolute).
    #[serde(default)]
    pub key: Vec<String>,
    /// Whether to write apt and yum repositories into the output folder (default true).
    pub repositories: Option<bool>,
}

/// `[tool.gradient.zipapp]`: settings of the single-file `.pyz`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipappConfig {
    /// The first line, without `#!` (default: `/usr/bin/env python3.X` of the build).
    pub shebang: Option<Spanned<String>>,
    /// Top-level packages to extract on first run even without native code (for packages
    /// that open their own files by path and so cannot run from inside an archive).
    #[serde(default)]
    pub extract: Vec<String>,
}

/// `[tool.gradient.frozen]`: settings of the single executable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenConfig {
    /// What writes the executable.
    #[serde(default)]
    pub engine: FrozenEngine,
}

/// The frozen tier's engines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrozenEngine {
    /// gradient's own: the launcher, the runtime bundle and the app, extracted once.
    #[default]
    Gradient,
    /// The real PyInstaller `--onefile`, on the same wheelhouse (it unpacks on every run).
    Pyinstaller,
}

/// `[tool.gradient.smoke]`: a command to run against every artifact and what it must print.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeConfig {
    /// The command, its first word a console script of the project (`["app", "--version"]`).
    pub command: Vec<String>,
    /// A substring its standard output must contain (with `http`: the answer's body).
    pub expect: Option<String>,
    /// The exit code it must end with (default 0).
    pub expect_exit: Option<i32>,
    /// Text written to its standard input.
    pub stdin: Option<String>,
    /// A server: `command` (with every `{port}` replaced by a free port) is started in the
    /// background, and this path is asked for over HTTP on 127.0.0.1 at that port until it
    /// answers; the answer must be a success whose body holds `expect`. Then the server is
    /// stopped.
    pub http: Option<String>,
}

/// What `{port}` stands for in a smoke command that serves HTTP.
pub const PORT_PLACEHOLDER: &str = "{port}";

/// Why a project could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no pyproject.toml or setup.py in `{}`", dir.display())]
    NotFound { dir: PathBuf },
    #[error("the project folder `{}` does not exist", dir.display())]
    Missing { dir: PathBuf },
    #[error("`{}` is a file, not a project folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: Option<String>,
    },
}

impl crate::Hint for ProjectError {
    fn hint(&self) -> Option<String> {
        match self {
            ProjectError::NotFound { .. } => {
                Some("point gradient at a Python project folder (one with a pyproject.toml)".into())
            }
            ProjectError::Missing { .. } => {
                Some("check the path; it names the folder that holds pyproject.toml".into())
            }
            ProjectError::NotAFolder { path } => Some(format!(
                "name the folder that holds pyproject.toml{}",
                path.parent()
                    .map(|p| format!(" (`{}`?)", p.display()))
                    .unwrap_or_default()
            )),
            ProjectError::Read { .. } => None,
            ProjectError::Invalid { hint, .. } => hint.clone(),
        }
    }
}

#[derive(Deserialize)]
struct RawPyproject {
    #[serde(rename = "build-system")]
    build_system: Option<RawBuildSystem>,
    project: Option<Spanned<RawProject>>,
    tool: Option<RawTools>,
}

#[derive(Deserialize)]
struct RawBuildSystem {
    requires: Option<Vec<String>>,
    #[serde(rename = "build-backend")]
    build_backend: Option<String>,
    #[serde(rename = "backend-path")]
    backend_path: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawProject {
    name: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    #[serde(default)]
    dynamic: Vec<String>,
    description: Option<String>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default, rename = "optional-dependencies")]
    optional_dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
    #[serde(default, rename = "gui-scripts")]
    gui_scripts: BTreeMap<String, String>,
    #[serde(default)]
    urls: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawTools {
    gradient: Option<Config>,
}

/// What to do about a pyproject.toml the TOML reader refused: a misspelt key, a value of
/// the wrong type, or broken syntax.
fn toml_hint(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or_default();
        let known: Vec<&str> = message
            .split_once("expected")
            .map(|(_, names)| names.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        return match closest(unknown, &known) {
            Some(name) => format!("did you mean `{name}`?"),
            None => "remove the key, or use one of the keys listed".to_string(),
        };
    }
    if message.starts_with("invalid type") {
        return "give the value the type named: quote text (python = \"3.11\"), put lists in [ ]"
            .to_string();
    }
    if message.starts_with("missing field") {
        return "add the missing key to that table".to_string();
    }
    "fix the TOML syntax at that position".to_string()
}

/// The name in `known` nearest to `word` by edit distance, when it is near enough to be a
/// slip of the keyboard.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substitution = previous + usize::from(ca != *cb);
                previous = row[j + 1];
                row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|name| (distance(word, name), *name))
        .filter(|(d, name)| *d <= 2.max(name.len() / 3))
        .min()
        .map(|(_, name)| name)
}

impl Project {
    /// Read the project in `dir`.
    pub fn load(dir: &Path) -> Result<Project, ProjectError> {
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        match std::fs::metadata(&root) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::Missing { dir: root })
            }
            Ok(meta) if !meta.is_dir() => return Err(ProjectError::NotAFolder { path: root }),
            _ => {}
        }
        let pyproject = root.join(PYPROJECT);
        match std::fs::read_to_string(&pyproject) {
            Ok(text) => Project::parse(&root, &pyproject, &text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if root.join("setup.py").is_file() {
                    Ok(Project::legacy(root))
                } else {
                    Err(ProjectError::NotFound { dir: root })
                }
            }
            Err(source) => Err(ProjectError::Read {
                path: pyproject,
                source,
            }),
        }
    }

    /// A `setup.py`-only project.
    fn legacy(root: PathBuf) -> Project {
        Project {
            root,
            declares_metadata: false,
            pyproject: None,
            name: None,
            version: None,
            dynamic: vec!["name".into(), "version".into()],
            description: None,
            requires_python: None,
            dependencies: Vec::new(),
            optional_dependencies: BTreeMap::new(),
            scripts: BTreeMap::new(),
            gui_scripts: BTreeMap::new(),
            urls: BTreeMap::new(),
            build_system: BuildSystem::legacy(),
            config: Config::default(),
        }
    }

    /// Parse the text of `path` (a `pyproject.toml` in `root`).
    pub fn parse(root: &Path, path: &Path, text: &str) -> Result<Project, ProjectError> {
        let invalid =
            |span: Option<std::ops::Range<usize>>, message: String, hint: Option<&str>| {
                let (line, column) = line_column(text, span.map_or(0, |s| s.start));
                ProjectError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message,
                    hint: hint.map(str::to_string),
                }
            };
        let raw: RawPyproject = toml::from_str(text).map_err(|err| {
            let message = err.message().trim().to_string();
            let hint = toml_hint(&message);
            invalid(err.span(), message, Some(&hint))
        })?;

        let build_system = match raw.build_system {
            None => BuildSystem::legacy(),
            Some(table) => BuildSystem {
                requires: table
                    .requires
                    .unwrap_or_else(|| vec![LEGACY_REQUIRES.to_string()]),
                implicit: table.build_backend.is_none(),
                backend: table
                    .build_backend
                    .unwrap_or_else(|| LEGACY_BACKEND.to_string()),
                backend_path: table.backend_path.unwrap_or_default(),
            },
        };
        let config = raw.tool.and_then(|t| t.gradient).unwrap_or_default();
        if config.platforms.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                find(text, "platforms"),
                "`platforms` in [tool.gradient] is empty".into(),
                Some("name at least one, e.g. platforms = [\"linux/amd64\", \"linux/arm64\"], or leave it out for the host's"),
            ));
        }
        if let Some(smoke) = &config.smoke {
            if smoke.command.is_empty() {
                return Err(invalid(
                    find(text, "[tool.gradient.smoke]"),
                    "`command` in [tool.gradient.smoke] is empty".into(),
                    Some("give the command as a list, e.g. command = [\"myapp\", \"--version\"]"),
                ));
            }
            if let Some(path) = &smoke.http {
                let at = find(text, "[tool.gradient.smoke]");
                if !path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(invalid(
                        at,
                        format!("[tool.gradient.smoke]: `http` must be a path that starts with `/`, without spaces, not `{path}`"),
                        Some("e.g. http = \"/health\""),
                    ));
                }
                if smoke.stdin.is_some() || smoke.expect_exit.is_some() {
                    return Err(invalid(
                        at,
                        "[tool.gradient.smoke]: a server (`http`) gets no `stdin` and is stopped, not awaited: `expect_exit` does not apply".into(),
                        Some("leave out `stdin` and `expect_exit`, or check the command without `http`"),
                    ));
                }
                if !smoke
                    .command
                    .iter()
                    .any(|word| word.contains(PORT_PLACEHOLDER))
                {
                    return Err(invalid(
                        at,
                        "[tool.gradient.smoke]: with `http`, the command must say where to listen: put `{port}` where the port goes".into(),
                        Some("e.g. command = [\"myapp\", \"serve\", \"--port\", \"{port}\"]; gradient replaces `{port}` with a free port"),
                    ));
                }
            }
        }

        if let Some(shebang) = &config.zipapp.shebang {
            let text = shebang.get_ref();
            one_line("the shebang", text).map_err(|message| {
                invalid(
                    Some(shebang.span()),
                    format!("[tool.gradient.zipapp]: {message}"),
                    Some(ONE_LINE_HINT),
                )
            })?;
            if text.trim().is_empty() {
                return Err(invalid(
                    Some(shebang.span()),
                    "[tool.gradient.zipapp]: the shebang is empty".into(),
                    Some("give the interpreter without `#!`, e.g. shebang = \"/usr/bin/env python3\""),
                ));
            }
        }
        // A `module:function` entry is written into the frozen executable's launch.txt.
        if let Some(entry) = &config.entry {
            one_line("the entry", entry).map_err(|message| {
                invalid(
                    find(text, "entry"),
                    format!("[tool.gradient]: {message}"),
                    Some(ONE_LINE_HINT),
                )
            })?;
        }

        if let Err(bad) = config.runtime.check(&|needle| find(text, needle)) {
            return Err(invalid(bad.span, bad.message, Some(bad.hint)));
        }
        if let Err(bad) = config.container.check() {
            return Err(invalid(
                bad.span.or_else(|| find(text, "[tool.gradient.container")),
                format!("[tool.gradient.container]: {}", bad.message),
                Some(bad.hint),
            ));
        }

        for format in [PackageFormat::Deb, PackageFormat::Rpm] {
            let package = match format {
                PackageFormat::Deb => &config.deb,
                PackageFormat::Rpm => &config.rpm,
            };
            if let Err(bad) = package.check(format) {
                let table = format.table();
                return Err(invalid(
                    bad.span.or_else(|| find(text, &table[..table.len() - 1])),
                    format!("{table}: {}", bad.message),
                    Some(bad.hint),
                ));
            }
        }
        if let Some(Err(bad)) = config.service.as_ref().map(ServiceConfig::check) {
            return Err(invalid(
                bad.span.or_else(|| find(text, "[tool.gradient.service")),
                format!("[tool.gradient.service]: {}", bad.message),
                Some(bad.hint),
            ));
        }

        let mut project = Project::legacy(root.to_path_buf());
        project.pyproject = Some(path.to_path_buf());
        project.build_system = build_system;
        // A project's own settings name a file inside it: a hostile pyproject.toml must not
        // make gradient read (and quote, in a parse error) a file elsewhere on the machine.
        if let Some(lock) = &config.lock {
            let lock_path = Path::new(lock);
            let inside = !lock.is_empty()
                && lock_path.is_relative()
                && lock_path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(invalid(
                    find(text, "lock"),
                    format!("`lock = {lock:?}` is not a path inside the project folder"),
                    Some("name the lock relative to the folder of pyproject.toml (`lock = \"uv.lock\"`); a lock elsewhere is given with --lock FILE"),
                ));
            }
        }
        project.config = config;
        let Some(table) = raw.project else {
            // A project without [project] (poetry 1, legacy setuptools with setup.cfg):
            // the backend decides name and version.
            return Ok(project);
        };
        let table_span = table.span();
        let table = table.into_inner();
        let dynamic = |field: &str| table.dynamic.iter().any(|d| d == field);

        let name = match table.name {
            Some(name) => {
                if !is_valid_name(name.get_ref()) {
                    return Err(invalid(
                        Some(name.span()),
                        format!("`{}` is not a valid project name", name.get_ref()),
                        Some("names are letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit (PEP 508)"),
                    ));
                }
                Some(name.into_inner())
            }
            None => {
                return Err(invalid(
                    header_span(text, "project", table_span),
                    "[project] has no `name`".into(),
                    Some("add `name = \"...\"` to [project]; PEP 621 does not allow the name to be dynamic"),
                ))
            }
        };
        if table.version.is_none() && !dynamic("version") {
            return Err(invalid(
                header_span(text, "project", table_span),
                "[project] has no `version` and does not list it in `dynamic`".into(),
                Some("add `version = \"0.1.0\"`, or `dynamic = [\"version\"]` if the build backend computes it"),
            ));
        }

        if let Some(version) = table
            .version
            .as_ref()
            .filter(|v| !crate::specifier::is_pep440_version(v.get_ref()))
        {
            return Err(invalid(
                Some(version.span()),
                format!("`{}` is not a PEP 440 version", version.get_ref()),
                Some("write it like 1.2.3, 1.2.3rc1, 1.2.3.post1 or 1.2.3.dev4 (PEP 440); a build backend refuses anything else"),
            ));
        }

        project.declares_metadata = true;
        project.name = name;

        project.version = table.version.map(Spanned::into_inner);
        project.dynamic = table.dynamic;
        project.description = table.description;
        project.requires_python = table.requires_python;
        project.dependencies = table.dependencies;
        if !project.dynamic.iter().any(|d| d == "optional-dependencies") {
            let groups: Vec<&str> = table
                .optional_dependencies
                .keys()
                .map(String::as_str)
                .collect();
            let known = |extra: &str| {
                groups
                    .iter()
                    .any(|g| crate::normalize_name(g) == crate::normalize_name(extra))
            };
            if let Some(extra) = project.config.extras.iter().find(|e| !known(e)) {
                let hint = match closest(extra, &groups) {
                    Some(group) => format!("did you mean `{group}`?"),
                    None if groups.is_empty() => {
                        "the project declares no [project.optional-dependencies]".to_string()
                    }
                    None => format!("the groups are: {}", groups.join(", ")),
                };
                return Err(invalid(
                    find(text, "extras"),
                    format!("`extras` names `{extra}`, which is not a group of [project.optional-dependencies]"),
                    Some(&hint),
                ));
            }
        }
        project.optional_dependencies = table.optional_dependencies;
        project.scripts = table.scripts;
        project.gui_scripts = table.gui_scripts;
        // A URL becomes an image label and, through the metadata, a package's Homepage.
        for (label, url) in &table.urls {
            for value in [label, url] {
                one_line("the URL", value).map_err(|message| {
                    invalid(
                        find(text, "[project.urls]").or(find(text, "urls")),
                        format!("[project.urls]: {message}"),
                        Some(ONE_LINE_HINT),
                    )
                })?;
            }
        }
        project.urls = table.urls;
        Ok(project)
    }

    /// The name for messages before the backend has spoken: the declared name, or the folder's.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into())
        })
    }
}

impl BuildSystem {
    fn legacy() -> BuildSystem {
        BuildSystem {
            requires: vec![LEGACY_REQUIRES.to_string()],
            backend: LEGACY_BACKEND.to_string(),
            backend_path: Vec::new(),
            implicit: true,
        }
    }
}

/// PEP 503 normalisation: lower case, runs of `-_.` become `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// Whether `name` is a valid project name (PEP 508): letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The span of a `[table]` header line, so errors about a missing key point at the table.
fn header_span(
    text: &str,
    table: &str,
    fallback: std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    find(text, &format!("[{table}]")).or(Some(fallback))
}

fn find(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|start| start..start + needle.len())
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the CLI shows it: its text and its hint.
    fn shown(err: ProjectError) -> String {
        crate::render(&err.to_string(), crate::Hint::hint(&err).as_deref())
    }

    fn parse(text: &str) -> Result<Project, ProjectError> {
        Project::parse(Path::new("/p"), Path::new("/p/pyproject.toml"), text)
    }

    #[test]
    fn reads_pep621_and_tool_gradient() {
        let project = parse(
            r#"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "demo"
version = "1.0"
dependencies = ["click>=8"]
[project.scripts]
demo = "demo:main"

[tool.gradient]
python = "3.11"
[tool.gradient.smoke]
command = ["demo", "--version"]
expect = "1.0"
"#,
        )
        .unwrap();
        assert_eq!(project.name.as_deref(), Some("demo"));
        assert_eq!(project.build_system.backend, "hatchling.build");
        assert!(!project.build_system.implicit);
        assert_eq!(project.scripts["demo"], "demo:main");
        assert_eq!(project.config.python.as_deref(), Some("3.11"));
        assert_eq!(project.config.smoke.unwrap().command, ["demo", "--version"]);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse("[project]\nname = \"x\"\nversion = \"1\nother = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/p/pyproject.toml:3:"), "{text}");
    }

    #[test]
    fn missing_name_points_at_the_project_table() {
        let err = parse("[build-system]\nrequires = []\n\n[project]\nversion = \"1\"\n")
            .map_err(shown)
            .unwrap_err();
        assert!(
            err.starts_with("/p/pyproject.toml:4:1: [project] has no `name`"),
            "{err}"
        );
    }

    #[test]
    fn version_may_be_dynamic_but_not_missing() {
        assert!(parse("[project]\nname = \"x\"\ndynamic = [\"version\"]\n").is_ok());
        let err = parse("[project]\nname = \"x\"\n")
            .map_err(shown)
            .unwrap_err();
        assert!(err.contains("no `version`"), "{err}");
    }

    #[test]
    fn unknown_gradient_settings_are_rejected_with_position() {
        let err =
            parse("[project]\nname = \"x\"\nversion = \"1\"\n[tool.gradient]\npyhton = \"3.11\"\n")
                .map_err(shown)
                .unwrap_err();
        assert!(err.starts_with("/p/pyproject.toml:5:1"), "{err}");
        assert!(err.contains("pyhton"), "{err}");
        assert!(err.contains("hint: did you mean `python`?"), "{err}");
        // A value of the wrong type is not a syntax error either.
        let err =
            parse("[project]\nname = \"x\"\nversion = \"1\"\n[tool.gradient]\npython = 3.11\n")
                .map_err(shown)
                .unwrap_err();
        assert!(err.contains("hint: give the value the type named"), "{err}");
        // Broken syntax keeps its own hint.
        let err = parse("[project]\nname = \"x\n").map_err(shown).unwrap_err();
        assert!(err.contains("hint: fix the TOML syntax"), "{err}");
    }

    #[test]
    fn a_version_that_is_not_pep440_is_refused_at_its_position() {
        let err = parse("[project]\nname = \"x\"\nversion = \"1.2.3-beta_final!x\"\n")
            .map_err(shown)
            .unwrap_err();
        assert!(
            err.starts_with(
                "/p/pyproject.toml:3:11: `1.2.3-beta_final!x` is not a PEP 440 version"
            ),
            "{err}"
        );
        assert!(err.contains("hint: write it like 1.2.3"), "{err}");
    }

    #[test]
    fn a_lock_setting_must_stay_inside_the_project() {
        let with = |lock: &str| {
            parse(&format!(
                "[project]\nname = \"x\"\nversion = \"1\"\n[tool.gradient]\nlock = \"{lock}\"\n"
            ))
        };
        assert_eq!(
            with("locks/uv.lock").unwrap().config.lock.as_deref(),
            Some("locks/uv.lock")
        );
        for outside in ["/etc/passwd", "../other/uv.lock", "a/../../b", ""] {
            let err = with(outside).unwrap_err().to_string();
            assert!(
                err.starts_with("/p/pyproject.toml:5:1: `lock ="),
                "{outside}: {err}"
            );
            assert!(
                err.contains("is not a path inside the project folder"),
                "{err}"
            );
        }
    }

    #[test]
    fn extras_must_name_declared_groups() {
        let with = |extras: &str| {
            parse(&format!(
                "[project]\nname = \"x\"\nversion = \"1\"\n[project.optional-dependencies]\nCli = [\"click\"]\n[tool.gradient]\nextras = {extras}\n"
            ))
        };
        assert!(with("[\"cli\"]").is_ok(), "names compare normalised");
        let err = with("[\"clj\"]").map_err(shown).unwrap_err();
        assert!(
            err.starts_with("/p/pyproject.toml:7:1: `extras` names `clj`"),
            "{err}"
        );
        assert!(err.contains("hint: did you mean `Cli`?"), "{err}");
        let err = parse(
            "[project]\nname = \"x\"\nversion = \"1\"\n[tool.gradient]\nextras = [\"nope\"]\n",
        )
        .map_err(shown)
        .unwrap_err();
        assert!(
            err.contains("declares no [project.optional-dependencies]"),
            "{err}"
        );
        // Groups the backend computes cannot be checked here.
        assert!(parse("[project]\nname = \"x\"\nversion = \"1\"\ndynamic = [\"optional-dependencies\"]\n[tool.gradient]\nextras = [\"any\"]\n").is_ok());
    }

    #[test]
    fn a_near_miss_is_offered_and_a_stranger_is_not() {
        let known = ["python", "entry", "smoke", "runtime"];
        assert_eq!(closest("pyhton", &known), Some("python"));
        assert_eq!(closest("smokes", &known), Some("smoke"));
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn a_missing_folder_and_a_file_are_told_apart_from_a_folder_without_a_project() {
        let dir = tempfile::tempdir().unwrap();
        let err = Project::load(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, ProjectError::Missing { .. }), "{err}");
        let file = dir.path().join("README.md");
        std::fs::write(&file, "x").unwrap();
        let err = Project::load(&file).map_err(shown).unwrap_err();
        assert!(err.contains("is a file, not a project folder"), "{err}");
        let err = Project::load(dir.path()).unwrap_err();
        assert!(matches!(err, ProjectError::NotFound { .. }), "{err}");
    }

    #[test]
    fn settings_that_land_in_line_based_files_stay_on_one_line() {
        let with = |extra: &str| {
            parse(&format!(
                "[project]\nname = \"x\"\nversion = \"1\"\n{extra}"
            ))
        };
        let refused = |extra: &str, says: &str| {
            let err = with(extra).map_err(shown).unwrap_err();
            assert!(err.contains(says), "expected {says:?} in {err}");
            err
        };
        let err = refused(
            "[project.urls]\nSource = \"https://x.invalid/\\nBreaks: libc6\"\n",
            "[project.urls]: the URL `https://x.invalid/\\nBreaks: libc6` holds a line break",
        );
        assert!(err.starts_with("/p/pyproject.toml:4:1: "), "{err}");
        let err = refused(
            "[tool.gradient]\nentry = \"x:main\\nscript y = os:system\"\n",
            "[tool.gradient]: the entry `x:main\\nscript y = os:system` holds a line break",
        );
        assert!(err.starts_with("/p/pyproject.toml:5:1: "), "{err}");
        assert!(err.contains("hint: write the value on one line"), "{err}");
        refused(
            "[tool.gradient.zipapp]\nshebang = \" \"\n",
            "the shebang is empty",
        );
        refused(
            "[tool.gradient.container]\nbase = \"docker:a\\rb\"\n",
            "the base image `docker:a\\rb` holds a line break",
        );
        refused(
            "[tool.gradient.container]\nentrypoint = [\"/bin/app\", \"a\\u0000b\"]\n",
            "a word of `entrypoint` holds a NUL character",
        );
        refused(
            "[tool.gradient.container.env]\nA = \"a\\u0000b\"\n",
            "the value of `A` holds a NUL character",
        );
        refused(
            "[tool.gradient.container.env]\n\"A B\" = \"1\"\n",
            "`A B` is not a valid environment variable name",
        );
        // What these files can hold is left alone: a newline in an environment value or an
        // argument of the image's command is valid in an OCI image's JSON config.
        assert!(with("[tool.gradient.container]\ncmd = [\"a\\nb\"]\n[tool.gradient.container.env]\nA = \"a\\nb\"\n").is_ok());
        assert!(with("[tool.gradient.deb]\nmaintainer = \"A B <a@b.org>\"\n[tool.gradient.zipapp]\nshebang = \"/usr/bin/env python3\"\n").is_ok());
    }

    #[test]
    fn no_build_system_means_legacy_setuptools() {
        let project = parse("[project]\nname = \"x\"\nversion = \"1\"\n").unwrap();
        assert!(project.build_system.implicit);
        assert_eq!(project.build_system.backend, LEGACY_BACKEND);
    }

    #[test]
    fn names_normalise_like_pep503() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
    }
}
