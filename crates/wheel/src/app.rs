//! The app's own wheel as the tiers use it: which of its scripts a build runs (and which
//! by default), and its importable files unpacked onto `sys.path`.

use crate::metadata::{inspect_wheel, WheelInfo};
use crate::{io, WheelError};
use gradient_archive::{read_zip_entries, EntryKind};
use gradient_core::{normalize_name, AppScripts, AppWheel, EntryError, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The app's wheel at `path`, read and checked ([`inspect_wheel`]), with the scripts an
/// artifact of it runs.
pub fn read_app_wheel(project: &Project, path: &Path) -> Result<AppWheel, WheelError> {
    let info = inspect_wheel(path)?;
    Ok(app_wheel(project, path.to_path_buf(), info))
}

/// The app's wheel at `path`, already read into `info` (as building it does), with the
/// scripts an artifact of it runs: read once, then shared by every tier.
pub fn app_wheel(project: &Project, path: PathBuf, info: WheelInfo) -> AppWheel {
    let entry = choose_entry(
        project,
        &normalize_name(&info.metadata.name),
        &info.console_scripts,
        info.legacy_scripts.keys(),
    )
    .map(|(scripts, default)| AppScripts { scripts, default });
    AppWheel { path, info, entry }
}

/// The scripts a single-file app can run, and which one runs by default: `entry`, else the one
/// named like the project, else the only one. The default may be a `legacy` script (a
/// setuptools `scripts=` file), which are counted with the console scripts. With several and none of these, there is no
/// default: a multi-call file runs the script it is invoked as, like busybox, and lists
/// them under any other name.
fn choose_entry(
    project: &Project,
    name: &str,
    console_scripts: &BTreeMap<String, String>,
    legacy: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(BTreeMap<String, String>, Option<String>), EntryError> {
    let mut scripts = console_scripts.clone();
    let mut names: Vec<String> = scripts.keys().cloned().collect();
    names.extend(legacy.into_iter().map(|n| n.as_ref().to_string()));
    names.sort();
    names.dedup();
    if let Some(entry) = &project.config.entry {
        if names.contains(entry) {
            return Ok((scripts, Some(entry.clone())));
        }
        if entry.contains(':') {
            scripts.insert(name.to_string(), entry.clone());
            return Ok((scripts, Some(name.to_string())));
        }
        return Err(EntryError::UnknownEntry {
            entry: entry.clone(),
            project: name.to_string(),
            scripts: scripts_list(&names),
        });
    }
    if let Some(script) = names.iter().find(|s| normalize_name(s) == name).cloned() {
        return Ok((scripts, Some(script)));
    }
    match names.len() {
        0 => Err(EntryError::NoEntry {
            project: name.to_string(),
        }),
        1 => Ok((scripts, names.pop())),
        _ => Ok((scripts, None)),
    }
}

fn scripts_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Unpack the parts of a wheel that belong on `sys.path` (root, purelib, platlib) into `dir`.
pub fn install_wheel_files(wheel: &Path, dir: &Path) -> Result<(), WheelError> {
    for entry in read_zip_entries(wheel)? {
        let EntryKind::File(data) = entry.kind else {
            continue;
        };
        let mut parts = entry.path.splitn(3, '/');
        let first = parts.next().unwrap_or("");
        let relative = if first.ends_with(".data") {
            match (parts.next(), parts.next()) {
                (Some("purelib" | "platlib"), Some(rest)) => rest.to_string(),
                _ => continue, // scripts, headers, data: not importable
            }
        } else {
            entry.path.clone()
        };
        if relative.split('/').any(|p| p == ".." || p.is_empty()) {
            continue;
        }
        let target = dir.join(&relative);
        std::fs::create_dir_all(target.parent().expect("a file has a parent"))
            .map_err(io("create", &target))?;
        std::fs::write(&target, data).map_err(io("write", &target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(config: &str) -> Project {
        let text = format!("[project]\nname = \"demo\"\nversion = \"1\"\n{config}");
        Project::parse(Path::new("/p"), Path::new("/p/pyproject.toml"), &text).unwrap()
    }

    const NONE: [&str; 0] = [];

    fn scripts(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("{n}:main")))
            .collect()
    }

    #[test]
    fn the_script_named_like_the_project_runs_by_default() {
        let (_, default) =
            choose_entry(&project(""), "demo", &scripts(&["demo-tool", "demo"]), NONE).unwrap();
        assert_eq!(default.as_deref(), Some("demo"));
        let (_, only) = choose_entry(&project(""), "demo", &scripts(&["tool"]), NONE).unwrap();
        assert_eq!(only.as_deref(), Some("tool"));
    }

    #[test]
    fn several_scripts_and_none_named_like_the_project_have_no_default_unless_chosen() {
        let (all, none) = choose_entry(&project(""), "demo", &scripts(&["a", "b"]), NONE).unwrap();
        assert_eq!((all.len(), none), (2, None));
        let chosen = project("[tool.gradient]\nentry = \"b\"\n");
        assert_eq!(
            choose_entry(&chosen, "demo", &scripts(&["a", "b"]), NONE)
                .unwrap()
                .1
                .as_deref(),
            Some("b")
        );
        let function = project("[tool.gradient]\nentry = \"demo.cli:run\"\n");
        let (all, default) = choose_entry(&function, "demo", &scripts(&[]), NONE).unwrap();
        assert_eq!(all[&default.unwrap()], "demo.cli:run");
        let wrong = project("[tool.gradient]\nentry = \"c\"\n");
        assert!(matches!(
            choose_entry(&wrong, "demo", &scripts(&["a"]), NONE),
            Err(EntryError::UnknownEntry { .. })
        ));
        assert!(matches!(
            choose_entry(&project(""), "demo", &scripts(&[]), NONE),
            Err(EntryError::NoEntry { .. })
        ));
        // A legacy script is a script too: the only one is the default.
        let (_, legacy) = choose_entry(&project(""), "demo", &scripts(&[]), ["tool"]).unwrap();
        assert_eq!(legacy.as_deref(), Some("tool"));
        let (_, none) = choose_entry(&project(""), "demo", &scripts(&["a"]), ["b"]).unwrap();
        assert_eq!(none, None);
    }
}
