//! The differential smoke test's data: what the app finds in a plain venv (the reference),
//! and how an artifact's findings compare with it.
//!
//! The reference is the app's wheel installed from the same lock into a fresh venv of the
//! build interpreter. A probe (gradient-python's `probe.py`) runs there first to choose what
//! to check ([`ProbePlan`]) and what comes of it, then with each artifact's own Python, as
//! its app runs. Each check an artifact gets differently from the reference is a mismatch
//! with a name; checks that fail in the reference too are reported, not counted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a probe checks, chosen in the reference venv.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePlan {
    /// Every top-level module and package of the app and of each locked distribution.
    pub modules: Vec<String>,
    /// `(name, version)` of the app and every locked distribution.
    pub distributions: Vec<(String, String)>,
    /// Every entry point of those distributions.
    pub entry_points: Vec<EntryPointRef>,
    /// Two standard modules that were not loaded yet once the app's modules and entry points
    /// were: they must still import then (an app that drops `sys.path[0]` must not lose the
    /// standard library).
    #[serde(default)]
    pub stdlib_later: Vec<String>,
}

/// One entry point, as a distribution's `entry_points.txt` declares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryPointRef {
    pub distribution: String,
    pub group: String,
    pub name: String,
    pub value: String,
}

impl EntryPointRef {
    /// How a user names it: `GROUP NAME = VALUE (DISTRIBUTION)`.
    pub fn shown(&self) -> String {
        format!(
            "entry point {} {} = {} ({})",
            self.group, self.name, self.value, self.distribution
        )
    }
}

/// What a probe found. Errors are one line: the exception's type and message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Module → `None` when it imported, else why not.
    pub imports: BTreeMap<String, Option<String>>,
    /// Normalised name → version, as `importlib.metadata.distributions()` lists them (the
    /// first found of each name, as importlib itself picks).
    pub distributions: BTreeMap<String, String>,
    /// [`EntryPointRef::shown`] → `None` when it loaded, else why not.
    pub entry_points: BTreeMap<String, Option<String>>,
}

/// The reference: the plan, what the reference venv made of it, and each console script's
/// exit code with `--help` there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub plan: ProbePlan,
    pub result: ProbeResult,
    pub help_exit: BTreeMap<String, i32>,
}

/// How an artifact's probe compares with the reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Checks that came out as in the reference.
    pub matched: usize,
    /// Checks counted (those that pass in the reference).
    pub total: usize,
    /// What differs, one line each, naming the check.
    pub mismatches: Vec<String>,
    /// Checks that fail in the reference venv too: reported, not counted.
    pub failing_in_reference: Vec<String>,
}

/// Python's normalised distribution name (PEP 503): lower case, runs of `-_.` as `-`.
pub fn normalize_distribution(name: &str) -> String {
    let mut normal = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
        } else {
            if separator && !normal.is_empty() {
                normal.push('-');
            }
            separator = false;
            normal.push(c.to_ascii_lowercase());
        }
    }
    normal
}

impl Reference {
    /// Compare an artifact's probe result with the reference's, check by check.
    pub fn compare(&self, found: &ProbeResult) -> Comparison {
        let mut comparison = Comparison::default();
        let mut judge =
            |name: String, reference: Option<&Option<String>>, found: Option<&Option<String>>| {
                match reference {
                    Some(Some(why)) => comparison
                        .failing_in_reference
                        .push(format!("{name}: {why}")),
                    Some(None) => {
                        comparison.total += 1;
                        match found {
                            Some(None) => comparison.matched += 1,
                            Some(Some(why)) => comparison
                                .mismatches
                                .push(format!("{name}: {why} (works in the reference venv)")),
                            None => comparison
                                .mismatches
                                .push(format!("{name}: not reported by the probe")),
                        }
                    }
                    None => {}
                }
            };
        for module in &self.plan.modules {
            judge(
                format!("import {module}"),
                self.result.imports.get(module),
                found.imports.get(module),
            );
        }
        for module in &self.plan.stdlib_later {
            judge(
                format!("import {module} (standard library, after the app's imports)"),
                self.result.imports.get(module),
                found.imports.get(module),
            );
        }
        for entry_point in &self.plan.entry_points {
            let shown = entry_point.shown();
            judge(
                shown.clone(),
                self.result.entry_points.get(&shown),
                found.entry_points.get(&shown),
            );
        }
        for (name, version) in &self.plan.distributions {
            comparison.total += 1;
            let key = normalize_distribution(name);
            match found.distributions.get(&key) {
                Some(listed) if listed == version => comparison.matched += 1,
                Some(listed) => comparison.mismatches.push(format!(
                    "importlib.metadata: {name} is {listed}, locked {version}"
                )),
                None => comparison.mismatches.push(format!(
                    "importlib.metadata: {name} {version} is not listed by distributions()"
                )),
            }
        }
        comparison
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        let entry_point = EntryPointRef {
            distribution: "plug".into(),
            group: "app.plugins".into(),
            name: "p".into(),
            value: "plug:P".into(),
        };
        Reference {
            plan: ProbePlan {
                modules: vec!["app".into(), "ns.sub".into(), "tests".into()],
                distributions: vec![
                    ("app".into(), "1.0".into()),
                    ("Zope.Interface".into(), "6".into()),
                ],
                entry_points: vec![entry_point.clone()],
                stdlib_later: vec!["wave".into()],
            },
            result: ProbeResult {
                imports: [
                    ("app".into(), None),
                    ("ns.sub".into(), None),
                    (
                        "tests".into(),
                        Some("ModuleNotFoundError: No module named 'pytest'".into()),
                    ),
                    ("wave".into(), None),
                ]
                .into(),
                distributions: [
                    ("app".into(), "1.0".into()),
                    ("zope-interface".into(), "6".into()),
                ]
                .into(),
                entry_points: [(entry_point.shown(), None)].into(),
            },
            help_exit: BTreeMap::new(),
        }
    }

    #[test]
    fn the_same_findings_match_every_counted_check() {
        let reference = reference();
        let comparison = reference.compare(&reference.result.clone());
        assert_eq!((comparison.matched, comparison.total), (6, 6));
        assert!(comparison.mismatches.is_empty());
        assert_eq!(
            comparison.failing_in_reference.len(),
            1,
            "tests fails in both: not counted"
        );
    }

    #[test]
    fn each_difference_is_named() {
        let reference = reference();
        let mut found = reference.result.clone();
        found.imports.insert(
            "ns.sub".into(),
            Some("ModuleNotFoundError: No module named 'ns'".into()),
        );
        found.distributions.remove("app");
        found
            .distributions
            .insert("zope-interface".into(), "5".into());
        found.entry_points.clear();
        found.imports.insert(
            "wave".into(),
            Some("ModuleNotFoundError: No module named 'wave'".into()),
        );
        let comparison = reference.compare(&found);
        assert_eq!((comparison.matched, comparison.total), (1, 6));
        let text = comparison.mismatches.join("\n");
        assert!(
            text.contains("import ns.sub: ModuleNotFoundError"),
            "{text}"
        );
        assert!(text.contains("app 1.0 is not listed"), "{text}");
        assert!(text.contains("Zope.Interface is 5, locked 6"), "{text}");
        assert!(
            text.contains("entry point app.plugins p = plug:P (plug): not reported"),
            "{text}"
        );
        assert!(
            text.contains(
                "import wave (standard library, after the app's imports): ModuleNotFoundError"
            ),
            "{text}"
        );
    }

    #[test]
    fn distribution_names_are_normalised() {
        assert_eq!(normalize_distribution("Zope.Interface"), "zope-interface");
        assert_eq!(normalize_distribution("a__b-c"), "a-b-c");
    }
}
