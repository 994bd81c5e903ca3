//! uv.lock (version 1): a graph of packages. What one target installs is found by walking
//! from the project's own entry along the edges whose markers hold there.

use crate::requirement::{split_specifier, Requirement};
use crate::stale::Recorded;
use crate::{
    kind_of, lock_marker, toml_error, url_file_name, Edge, Environment, Lock, LockError, LockFile,
    LockedFile, Package, Source,
};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

#[derive(Deserialize)]
struct Raw {
    version: Option<u32>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    package: Vec<Spanned<RawPackage>>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<RawEdge>,
    #[serde(default, rename = "optional-dependencies")]
    optional: BTreeMap<String, Vec<RawEdge>>,
    #[serde(default, rename = "dev-dependencies")]
    dev: BTreeMap<String, Vec<RawEdge>>,
    sdist: Option<RawFile>,
    #[serde(default)]
    wheels: Vec<RawFile>,
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
struct RawEdge {
    name: String,
    version: Option<String>,
    /// Given when one name and version comes from several sources (indexes).
    source: Option<BTreeMap<String, toml::Value>>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

#[derive(Deserialize)]
struct RawFile {
    url: Option<String>,
    path: Option<String>,
    hash: Option<String>,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default, rename = "requires-dist")]
    requires_dist: Vec<RawRequirement>,
}

#[derive(Deserialize)]
struct RawRequirement {
    name: String,
    specifier: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
    url: Option<String>,
    git: Option<String>,
    path: Option<String>,
    editable: Option<String>,
}

/// The uv.lock versions this reader understands.
const SUPPORTED: u32 = 1;

pub(crate) fn parse(file: LockFile, text: String) -> Result<Lock, LockError> {
    let raw: Raw = toml::from_str(&text).map_err(|e| toml_error(&file, &text, e))?;
    match raw.version {
        Some(SUPPORTED) => {}
        other => {
            return Err(LockError::Version {
                path: file.path.clone(),
                formats: other.map_or("no `version`".into(), |v| format!("uv.lock version {v}")),
                supported: SUPPORTED.to_string(),
            })
        }
    }
    let lines = crate::LineIndex::new(&text);
    let mut packages = Vec::new();
    let mut root = None;
    let mut recorded = None;
    for spanned in &raw.package {
        let line = lines.line(spanned.span().start);
        let raw_package = spanned.get_ref();
        let name = gradient_core::normalize_name(&raw_package.name);
        let local = ["editable", "virtual", "directory"]
            .iter()
            .find_map(|k| raw_package.source.get(*k).and_then(|v| v.as_str()));
        if local == Some(".") && root.is_none() {
            root = Some(packages.len());
            recorded = Some(Recorded {
                version: raw_package.version.clone().unwrap_or_default(),
                requires_dist: raw_package
                    .metadata
                    .iter()
                    .flat_map(|m| &m.requires_dist)
                    .map(|r| recorded_requirement(&file, line, r))
                    .collect::<Result<_, _>>()?,
                requires_python: raw.requires_python.clone(),
            });
        }
        let source = source_of(&raw_package.source);
        let mut files = Vec::new();
        let direct = match &source {
            Source::Url(url) => Some(url.clone()),
            _ => None,
        };
        for (raw_file, wheel) in raw_package
            .sdist
            .iter()
            .map(|f| (f, false))
            .chain(raw_package.wheels.iter().map(|f| (f, true)))
        {
            let Some(sha256) = raw_file
                .hash
                .as_deref()
                .and_then(|h| h.strip_prefix("sha256:"))
            else {
                continue;
            };
            let url = raw_file.url.clone().or_else(|| direct.clone());
            let name = url
                .as_deref()
                .or(raw_file.path.as_deref())
                .and_then(url_file_name);
            files.push(LockedFile {
                kind: match (&direct, wheel) {
                    (_, true) => crate::FileKind::Wheel,
                    (Some(_), false) => crate::FileKind::Archive,
                    (None, false) => name.as_deref().map_or(crate::FileKind::Sdist, kind_of),
                },
                name,
                url,
                size: raw_file.size,
                sha256: sha256.to_ascii_lowercase(),
            });
        }
        let edges = |raw: &[RawEdge]| -> Result<Vec<Edge>, LockError> {
            raw.iter()
                .map(|e| {
                    Ok(Edge {
                        name: gradient_core::normalize_name(&e.name),
                        version: e.version.clone(),
                        source: e.source.as_ref().map(source_of),
                        marker: e
                            .marker
                            .as_deref()
                            .map(|m| lock_marker(&file, line, m))
                            .transpose()?,
                        extras: e
                            .extra
                            .iter()
                            .map(|x| gradient_core::normalize_name(x))
                            .collect(),
                    })
                })
                .collect()
        };
        packages.push(Package {
            name,
            version: raw_package.version.clone().unwrap_or_default(),
            marker: None,
            source,
            files,
            line,
            dependencies: edges(&raw_package.dependencies)?,
            optional: raw_package
                .optional
                .iter()
                .map(|(k, v)| Ok((gradient_core::normalize_name(k), edges(v)?)))
                .collect::<Result<_, LockError>>()?,
            groups: raw_package
                .dev
                .iter()
                .map(|(k, v)| Ok((gradient_core::normalize_name(k), edges(v)?)))
                .collect::<Result<_, LockError>>()?,
        });
    }
    let Some(root_index) = root else {
        return Err(LockError::NotALock {
            path: file.path.clone(),
            reason: "it has no package for the project folder itself (source `.`)".into(),
        });
    };
    Ok(Lock {
        project: Some(packages[root_index].name.clone()),
        file,
        text,
        requires_python: raw.requires_python,
        packages,
        root,
        environments: Vec::new(),
        default_groups: Vec::new(),
        recorded,
        gradient_inputs: None,
        gradient_requirements: None,
        known_extras: None,
        known_groups: None,
    })
}

fn source_of(table: &BTreeMap<String, toml::Value>) -> Source {
    let get = |key: &str| table.get(key).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(url) = get("registry") {
        Source::Index(Some(url))
    } else if let Some(url) = get("url") {
        Source::Url(url)
    } else if let Some(url) = get("git") {
        Source::Unsupported(format!(
            "the git repository `{}`",
            gradient_core::redact(&url)
        ))
    } else if let Some(path) = ["path", "directory", "editable", "virtual"]
        .iter()
        .find_map(|k| get(k))
    {
        Source::Unsupported(format!("the local path `{path}`"))
    } else {
        Source::Index(None)
    }
}

fn recorded_requirement(
    file: &LockFile,
    line: usize,
    raw: &RawRequirement,
) -> Result<Requirement, LockError> {
    let extras: BTreeSet<String> = raw
        .extras
        .iter()
        .map(|e| gradient_core::normalize_name(e))
        .collect();
    let url = raw
        .url
        .clone()
        .or_else(|| raw.git.as_ref().map(|g| format!("git+{g}")))
        .or_else(|| {
            raw.path
                .clone()
                .or(raw.editable.clone())
                .map(|p| format!("file:{p}"))
        });
    let mut text = raw.name.clone();
    if !extras.is_empty() {
        text += &format!("[{}]", extras.iter().cloned().collect::<Vec<_>>().join(","));
    }
    text += raw.specifier.as_deref().unwrap_or_default();
    if let Some(url) = &url {
        text += &format!(" @ {url}");
    }
    if let Some(marker) = &raw.marker {
        text += &format!("; {marker}");
    }
    Ok(Requirement {
        name: gradient_core::normalize_name(&raw.name),
        extras,
        specifier: split_specifier(raw.specifier.as_deref().unwrap_or_default()),
        url,
        marker: raw
            .marker
            .as_deref()
            .map(|m| lock_marker(file, line, m))
            .transpose()?,
        text,
    })
}

/// What `env` installs, walking from the project's entry (`root`) with its extras and groups.
pub(crate) fn walk<'a>(
    lock: &'a Lock,
    root: usize,
    env: &Environment,
) -> Result<Vec<&'a Package>, LockError> {
    let root_package = &lock.packages[root];
    let mut start: Vec<&Edge> = root_package.dependencies.iter().collect();
    for (wanted, table) in [
        (&env.extras, &root_package.optional),
        (&env.dependency_groups, &root_package.groups),
    ] {
        for name in wanted {
            let edges = table
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, e)| e)
                .ok_or_else(|| LockError::UnknownGroup {
                    path: lock.file.path.clone(),
                    name: format!("extra or group `{name}`"),
                })?;
            start.extend(edges);
        }
    }
    // Where extras or groups conflict (`[tool.uv] conflicts`), uv's markers name them as
    // `extra == 'extra-N-ROOT-EXTRA'` and `'group-N-ROOT-GROUP'` (N: the length of ROOT).
    let mut env = env.clone();
    let root_name = &root_package.name;
    let encoded: Vec<String> = env
        .extras
        .iter()
        .map(|e| format!("extra-{}-{root_name}-{e}", root_name.len()))
        .chain(
            env.dependency_groups
                .iter()
                .map(|g| format!("group-{}-{root_name}-{g}", root_name.len())),
        )
        .collect();
    env.extras.extend(encoded);
    let mut seen: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
    let mut queue: Vec<&Edge> = start;
    let mut chosen = Vec::new();
    while let Some(edge) = queue.pop() {
        if edge.marker.as_ref().is_some_and(|m| !m.evaluate(&env)) {
            continue;
        }
        let index = lock
            .packages
            .iter()
            .position(|p| {
                p.name == edge.name
                    && edge.version.as_ref().is_none_or(|v| *v == p.version)
                    && edge.source.as_ref().is_none_or(|s| *s == p.source)
            })
            .ok_or_else(|| LockError::Dangling {
                path: lock.file.path.clone(),
                package: edge.name.clone(),
            })?;
        if index == root || !seen.insert((index, edge.extras.clone())) {
            continue;
        }
        let package = &lock.packages[index];
        chosen.push(package);
        queue.extend(&package.dependencies);
        for extra in &edge.extras {
            if let Some((_, edges)) = package.optional.iter().find(|(k, _)| k == extra) {
                queue.extend(edges);
            }
        }
    }
    Ok(chosen)
}
