//! apt run with a private configuration, state and download folder, so that nothing of
//! the machine's apt or dpkg is read for resolving or written.

use super::sources::Source;
use super::{io, DebianArch, TargetPythonError};
use crate::staging::Staged;
use std::path::{Path, PathBuf};
use std::process::Command;

/// apt with a private configuration, state and download folder.
pub(super) struct Apt {
    /// `APT_CONFIG`'s file.
    config: PathBuf,
    /// `-o` options for every call.
    options: Vec<String>,
    /// This run's download folder (fresh, so that apt lists every package to fetch).
    pub(super) archives: Staged,
    arch: DebianArch,
}

impl Apt {
    /// Write the private configuration under `dir` (state and lists persist there, so a
    /// later root for another version updates only what changed) and make this run's
    /// download folder in `staging`.
    pub(super) fn prepare(
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

    pub(super) fn command(&self, program: &str) -> Command {
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
    pub(super) fn run(
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

    pub(super) fn update(&self) -> Result<(), TargetPythonError> {
        let mut command = self.command("apt-get");
        command.args(["-q", "update"]);
        self.run(command, "update the package lists", &[]).map(drop)
    }

    /// The Python versions the suite has for this architecture (`python3.Y-minimal`).
    pub(super) fn python_versions(&self) -> Result<Vec<String>, TargetPythonError> {
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
    pub(super) fn uris(
        &self,
        packages: &[String],
    ) -> Result<Vec<(String, String)>, TargetPythonError> {
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

    pub(super) fn download(&self, packages: &[String]) -> Result<(), TargetPythonError> {
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
