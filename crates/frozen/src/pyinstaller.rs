//! The frozen tier's second engine, `[tool.gradient.frozen] engine = "pyinstaller"`: the real
//! PyInstaller (`--onefile`), installed from PyPI into an environment of its own in the cache,
//! run on the same wheelhouse and wheel as gradient's own engine, so that the two can be
//! compared on the same project.

use crate::{io, FrozenError};
use gradient_core::{normalize_name, AppScripts, AppWheel, InterpreterFacts, SourceDate};
use gradient_python::installer::Source;
use gradient_python::Installer;
use sha2::Digest;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The PyInstaller release this engine installs: pinned, so builds stay reproducible.
pub const PYINSTALLER: &str = "pyinstaller==6.22.3";

/// Written last into a finished environment.
const COMPLETE: &str = "gradient-complete";

/// Build `NAME-VERSION-PLATFORM` in `work_dir` with PyInstaller.
pub async fn build_with_pyinstaller(
    python: &InterpreterFacts,
    installer: &Installer,
    app: &AppWheel,
    dependencies: &Path,
    work_dir: &Path,
    source_date: SourceDate,
    cache_root: &Path,
) -> Result<PathBuf, FrozenError> {
    let pyinstaller = pyinstaller_env(python, installer, cache_root).await?;

    // The app and its dependencies in one folder PyInstaller searches.
    let site = work_dir.join("site");
    gradient_python::wheelhouse::copy_site(dependencies, &site)?;
    gradient_wheel::install_wheel_files(&app.path, &site)?;
    let info = &app.info;
    let AppScripts { scripts, default } = app.scripts()?;
    let default = default.clone().ok_or_else(|| FrozenError::AmbiguousEntry {
        project: normalize_name(&info.metadata.name),
        scripts: scripts.keys().cloned().collect::<Vec<_>>().join(", "),
    })?;
    if info.legacy_scripts.contains_key(&default) && !scripts.contains_key(&default) {
        return Err(FrozenError::PyInstallerLegacyScript { script: default });
    }
    let target = scripts
        .get(&default)
        .cloned()
        .unwrap_or_else(|| default.clone());
    let entry = work_dir.join("entry.py");
    std::fs::write(&entry, entry_script(&target)).map_err(io("write", &entry))?;

    // The same name as gradient's own engine writes.
    let platform = gradient_core::Platform::host().ok_or(FrozenError::NoLauncher {
        machine: std::env::consts::ARCH.to_string(),
    })?;
    let name = crate::assemble::file_name(
        &normalize_name(&info.metadata.name),
        &info.metadata.version,
        platform,
    );
    let mut command = Command::new(pyinstaller.join("bin/python"));
    command
        .args([
            "-m",
            "PyInstaller",
            "--onefile",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--name",
            &name,
        ])
        .arg("--paths")
        .arg(&site)
        .arg("--distpath")
        .arg(work_dir.join("dist"))
        .arg("--workpath")
        .arg(work_dir.join("build"))
        .arg("--specpath")
        .arg(work_dir);
    // The app's own packages whole (data files included) and its metadata (for
    // importlib.metadata); the dependencies are found by following imports.
    for package in top_level_packages(&site, &info.metadata.name) {
        command.args(["--collect-all", &package]);
    }
    command
        .args(["--copy-metadata", &info.metadata.name])
        .arg(&entry)
        // PyInstaller's own process reads the app's metadata and collects its packages.
        .env("PYTHONPATH", &site)
        .env("PYTHONHASHSEED", "0")
        .env("SOURCE_DATE_EPOCH", source_date.seconds.to_string())
        .env("PYINSTALLER_CONFIG_DIR", work_dir.join("config"))
        .current_dir(work_dir);
    // Killed whole when the run stops (PyInstaller runs compilers and helpers of its own).
    let output = gradient_python::ProcessGroup::output_of(&mut command)
        .await
        .map_err(io("run", &pyinstaller))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(FrozenError::PyInstaller {
            detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(work_dir.join("dist").join(name))
}

/// A script that calls the entry point `module:object.attribute [extras]`: the module is
/// imported by name, so PyInstaller's analysis follows it.
fn entry_script(target: &str) -> String {
    let target = target.split('[').next().unwrap_or(target).trim();
    let (module, object) = target.split_once(':').unwrap_or((target, ""));
    let mut script = format!("import sys\nimport {} as entry\n", module.trim());
    for attribute in object.split('.').map(str::trim).filter(|a| !a.is_empty()) {
        script.push_str(&format!("entry = entry.{attribute}\n"));
    }
    script.push_str("sys.exit(entry())\n");
    script
}

/// An environment with PyInstaller for `python`, made once in the cache (staging folder,
/// then a rename).
async fn pyinstaller_env(
    python: &InterpreterFacts,
    installer: &Installer,
    cache_root: &Path,
) -> Result<PathBuf, FrozenError> {
    let parent = cache_root.join("pyinstaller");
    // The environment's interpreter is this one (its path, version, size and time): another
    // or a changed one gets an environment of its own.
    let stamp = std::fs::metadata(&python.executable)
        .map(|m| format!("{:?}{}", m.modified().ok(), m.len()))
        .unwrap_or_default();
    let identity = format!(
        "{}\0{}\0{stamp}",
        python.executable.display(),
        python.full_version()
    );
    let key = format!(
        "{}-{}-{}",
        PYINSTALLER.replace("==", "-"),
        python.full_version(),
        &hex::encode(sha2::Sha256::digest(identity.as_bytes()))[..12]
    );
    let dir = parent.join(&key);
    if dir.join(COMPLETE).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let staging = parent.join(format!(".{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let venv_python = installer.create_venv(&python.executable, &staging).await?;
    installer
        .install(&venv_python, &[OsString::from(PYINSTALLER)], Source::Index)
        .await?;
    // Its console scripts name the staging folder: PyInstaller is run as
    // `bin/python -m PyInstaller`, which works from wherever the folder is.
    let complete = staging.join(COMPLETE);
    std::fs::write(&complete, PYINSTALLER).map_err(io("write", &complete))?;
    if let Err(source) = std::fs::rename(&staging, &dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another run made it first, or the rename failed: only a finished one will do.
        if !dir.join(COMPLETE).is_file() {
            return Err(io("move into place", &dir)(source));
        }
    }
    Ok(dir)
}

/// The importable top-level packages the app's wheel put into `site`.
fn top_level_packages(site: &Path, name: &str) -> Vec<String> {
    let normalized = normalize_name(name).replace('-', "_");
    let mut packages = Vec::new();
    for entry in std::fs::read_dir(site).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(dist) = file.strip_suffix(".dist-info") else {
            continue;
        };
        let dist_name = dist.split('-').next().unwrap_or("").to_lowercase();
        if dist_name.replace('-', "_") != normalized {
            continue;
        }
        let record = std::fs::read_to_string(entry.path().join("RECORD")).unwrap_or_default();
        for line in record.lines() {
            let path = line.split(',').next().unwrap_or("");
            if let Some((top, _)) = path.split_once('/') {
                if !top.ends_with(".dist-info")
                    && !top.ends_with(".data")
                    && !packages.iter().any(|p| p == top)
                {
                    packages.push(top.to_string());
                }
            }
        }
    }
    packages.sort();
    packages
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_with_attributes_and_extras_become_calls() {
        assert_eq!(
            super::entry_script("app.cli:main"),
            "import sys\nimport app.cli as entry\nentry = entry.main\nsys.exit(entry())\n"
        );
        assert_eq!(
            super::entry_script("app.cli:Cli.run [color]"),
            "import sys\nimport app.cli as entry\nentry = entry.Cli\nentry = entry.run\nsys.exit(entry())\n"
        );
    }
}
