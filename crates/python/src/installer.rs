//! Virtual environments and installs, through `uv` when it is on PATH, else `pip`.
//!
//! `GRADIENT_INSTALLER=pip` forces pip even when uv is on PATH.

use crate::interpreter::which;
use crate::process::run_checked;
use crate::PythonError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The tool that creates environments and installs into them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installer {
    Uv(PathBuf),
    Pip,
}

/// Where `install` may take packages from.
#[derive(Clone, Copy, Debug, Default)]
pub enum Source<'a> {
    /// The configured package index (and the installer's own cache).
    #[default]
    Index,
    /// Only this folder of wheels: no network.
    Offline(&'a Path),
}

impl Installer {
    /// `uv` on PATH, else pip; `GRADIENT_INSTALLER=pip` forces pip.
    pub fn detect() -> Installer {
        let forced = std::env::var("GRADIENT_INSTALLER").unwrap_or_default();
        match (forced.as_str(), which("uv")) {
            ("pip", _) => Installer::Pip,
            (_, Some(uv)) => Installer::Uv(uv),
            (_, None) => Installer::Pip,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Installer::Uv(_) => "uv",
            Installer::Pip => "pip",
        }
    }

    /// Create an empty virtual environment at `dir` for `python`; returns its interpreter.
    pub async fn create_venv(&self, python: &Path, dir: &Path) -> Result<PathBuf, PythonError> {
        let mut command = match self {
            Installer::Uv(uv) => {
                let mut c = Command::new(uv);
                c.args(["venv", "--quiet", "--no-config", "--python"])
                    .arg(python)
                    .arg(dir);
                c
            }
            Installer::Pip => {
                let mut c = Command::new(python);
                c.args(["-m", "venv"]).arg(dir);
                c
            }
        };
        command.env_clear().envs(crate::isolated_env());
        run_checked(&mut command, "create a virtual environment").await?;
        Ok(dir.join("bin").join("python"))
    }

    /// Install `requirements` (names with specifiers, or paths to wheels) into the
    /// environment whose interpreter is `venv_python`.
    pub async fn install(
        &self,
        venv_python: &Path,
        requirements: &[OsString],
        source: Source<'_>,
    ) -> Result<(), PythonError> {
        self.install_with(venv_python, requirements, source, false)
            .await
    }

    /// As [`Installer::install`], and byte-compile what is installed: for environments
    /// gradient keeps and runs again and again (build environments), whose hook processes
    /// write no bytecode, so that no later run compiles the backend's modules in memory
    /// (setuptools imports in ~90 ms compiled, ~250 ms from source here).
    pub async fn install_compiled(
        &self,
        venv_python: &Path,
        requirements: &[OsString],
        source: Source<'_>,
    ) -> Result<(), PythonError> {
        self.install_with(venv_python, requirements, source, true)
            .await
    }

    async fn install_with(
        &self,
        venv_python: &Path,
        requirements: &[OsString],
        source: Source<'_>,
        compile: bool,
    ) -> Result<(), PythonError> {
        if requirements.is_empty() {
            return Ok(());
        }
        let mut command = match self {
            Installer::Uv(uv) => {
                let mut c = Command::new(uv);
                c.args(["pip", "install", "--quiet", "--no-config", "--python"])
                    .arg(venv_python);
                if compile {
                    c.arg("--compile-bytecode");
                }
                c
            }
            Installer::Pip => {
                // pip compiles what it installs unless told not to.
                let mut c = Command::new(venv_python);
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
        if let Source::Offline(folder) = source {
            command.arg("--no-index").arg("--find-links").arg(folder);
        }
        command
            .args(requirements)
            .env_clear()
            .envs(crate::isolated_env());
        let shown: Vec<String> = requirements
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect();
        run_checked(&mut command, &format!("install {}", shown.join(" "))).await?;
        Ok(())
    }
}
