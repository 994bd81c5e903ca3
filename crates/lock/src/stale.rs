//! Whether a lock is still current with `pyproject.toml`, and if not, what differs.
//!
//! uv.lock records the requirements it was made from: they must equal the project's, by
//! meaning (`>=8.1,<9` equals `<9, >=8.1`; two markers are equal when they hold in the same
//! environments, judged over a spread of platforms, Python versions and extras), which is the
//! judgement `uv lock --check` makes. pylock.toml and hashed requirements record no inputs.
//! For every lock, each requirement of the project that applies to the target must be met
//! by a package the lock installs there.

use crate::marker::Environment;
use crate::requirement::Requirement;
use crate::version::{satisfies, Version};
use crate::{Lock, Package};
use std::collections::{BTreeMap, BTreeSet};

/// What pyproject.toml asks for.
pub struct ProjectRequirements<'a> {
    /// The project's version, when `pyproject.toml` states it.
    pub version: Option<&'a str>,
    pub dependencies: &'a [String],
    pub optional: &'a BTreeMap<String, Vec<String>>,
    pub requires_python: Option<&'a str>,
}

/// The requirements a uv.lock recorded for its project.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The project's own version as the lock recorded it.
    pub version: String,
    pub requires_dist: Vec<Requirement>,
    pub requires_python: Option<String>,
}

/// A requirement and the extra it belongs to (for `[project.optional-dependencies]`).
struct Asked {
    requirement: Requirement,
    extra: Option<String>,
}

impl Asked {
    fn holds(&self, env: &Environment) -> bool {
        self.requirement
            .marker
            .as_ref()
            .is_none_or(|m| m.evaluate(env))
            && self.extra.as_ref().is_none_or(|e| env.extras.contains(e))
    }
}

fn asked(project: &ProjectRequirements) -> (Vec<Asked>, Vec<String>) {
    let mut asked = Vec::new();
    let mut unreadable = Vec::new();
    let groups = std::iter::once((None, project.dependencies)).chain(
        project
            .optional
            .iter()
            .map(|(extra, reqs)| (Some(gradient_core::normalize_name(extra)), reqs.as_slice())),
    );
    for (extra, requirements) in groups {
        for text in requirements {
            match Requirement::parse(text) {
                Ok(requirement) => asked.push(Asked {
                    requirement,
                    extra: extra.clone(),
                }),
                Err(message) => unreadable.push(format!("pyproject.toml: {message}")),
            }
        }
    }
    (asked, unreadable)
}

/// Environments spread across what markers usually test.
fn spread(extras: &BTreeSet<String>) -> Vec<Environment> {
    let mut envs = Vec::new();
    let mut extra_sets: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
    extra_sets.extend(extras.iter().map(|e| BTreeSet::from([e.clone()])));
    for minor in 6..=15 {
        for micro in [0, 5] {
            for (platform, machine) in [
                ("linux", "x86_64"),
                ("linux", "aarch64"),
                ("win32", "AMD64"),
                ("darwin", "arm64"),
            ] {
                for extras in &extra_sets {
                    let mut env = Environment::linux("cpython", (3, minor, micro), "linux_x86_64");
                    env.sys_platform = platform.into();
                    env.platform_machine = machine.into();
                    (env.os_name, env.platform_system) = match platform {
                        "win32" => ("nt".into(), "Windows".into()),
                        "darwin" => ("posix".into(), "Darwin".into()),
                        _ => ("posix".into(), "Linux".into()),
                    };
                    env.extras = extras.clone();
                    envs.push(env);
                }
            }
        }
    }
    envs
}

/// Whether two `requires-python` specifiers admit the same versions.
fn same_python_range(a: Option<&str>, b: Option<&str>) -> bool {
    let admits = |spec: Option<&str>, v: (u32, u32, u32)| {
        spec.is_none_or(|s| gradient_core::python_satisfies(s, v).unwrap_or(true))
    };
    (0..=20).all(|minor| {
        [0, 1, 5]
            .iter()
            .all(|&micro| admits(a, (3, minor, micro)) == admits(b, (3, minor, micro)))
    })
}

impl Lock {
    /// How the lock differs from what `project` asks for (one line each); empty when it is
    /// current. `selected` is what the lock installs for `env`.
    pub fn staleness(
        &self,
        project: &ProjectRequirements,
        selected: &[&Package],
        env: &Environment,
    ) -> Vec<String> {
        let (asked, mut differences) = asked(project);
        let file = self
            .file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(recorded) = &self.recorded {
            let same_version = |v: &str| match (
                crate::version::Version::parse(v),
                crate::version::Version::parse(&recorded.version),
            ) {
                (Some(a), Some(b)) => a == b,
                _ => v == recorded.version,
            };
            if let Some(version) = project.version.filter(|v| !same_version(v)) {
                differences.push(format!(
                    "pyproject.toml's version is {version}; {file} was made for {}",
                    recorded.version
                ));
            }
            let extras: BTreeSet<String> = asked.iter().filter_map(|a| a.extra.clone()).collect();
            let envs = spread(&extras);
            let same = |a: &Asked, r: &Requirement| {
                a.requirement.name == r.name
                    && a.requirement.extras == r.extras
                    && a.requirement.specifier == r.specifier
                    && a.requirement.url == r.url
                    && envs.iter().all(|env| {
                        a.holds(env) == r.marker.as_ref().is_none_or(|m| m.evaluate(env))
                    })
            };
            let mut matched = vec![false; recorded.requires_dist.len()];
            for a in &asked {
                match (0..recorded.requires_dist.len())
                    .find(|&i| !matched[i] && same(a, &recorded.requires_dist[i]))
                {
                    Some(i) => matched[i] = true,
                    None => differences.push(format!(
                        "pyproject.toml asks for `{}`{}, which {file} does not record",
                        a.requirement.text,
                        a.extra
                            .as_ref()
                            .map(|e| format!(" (extra `{e}`)"))
                            .unwrap_or_default()
                    )),
                }
            }
            for (r, _) in recorded
                .requires_dist
                .iter()
                .zip(&matched)
                .filter(|(_, m)| !**m)
            {
                differences.push(format!(
                    "{file} records `{}`, which pyproject.toml no longer asks for",
                    r.text
                ));
            }
            if !same_python_range(project.requires_python, recorded.requires_python.as_deref()) {
                differences.push(format!(
                    "pyproject.toml's requires-python is `{}`; {file} was made for `{}`",
                    project.requires_python.unwrap_or("(none)"),
                    recorded.requires_python.as_deref().unwrap_or("(none)")
                ));
            }
        }
        // Every lock: what the project asks for on the target must be what it installs there.
        for a in asked
            .iter()
            .filter(|a| a.holds(env) && a.requirement.url.is_none())
        {
            let spec = a.requirement.specifier.join(",");
            match selected.iter().find(|p| p.name == a.requirement.name) {
                None => differences.push(format!(
                    "pyproject.toml asks for `{}`; {file} installs no {} for {}",
                    a.requirement.text,
                    a.requirement.name,
                    crate::describe(env)
                )),
                Some(p) => {
                    let met = Version::parse(&p.version)
                        .and_then(|v| satisfies(&v, &spec))
                        .unwrap_or(true);
                    if !met {
                        differences.push(format!(
                            "pyproject.toml asks for `{}`; {file} pins {} {}",
                            a.requirement.text, p.name, p.version
                        ));
                    }
                }
            }
        }
        differences
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_ranges_compare_by_meaning() {
        assert!(same_python_range(Some(">=3.9"), Some(">= 3.9")));
        assert!(same_python_range(Some("~=3.9"), Some(">=3.9,<4")));
        assert!(!same_python_range(Some(">=3.10"), Some(">=3.9")));
        assert!(!same_python_range(None, Some(">=3.9")));
    }
}
