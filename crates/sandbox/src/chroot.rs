//! Running a command in a root folder through `chroot`, inside new network, mount and PID
//! namespaces with a fresh /proc, with the root's environment and user, and the device
//! files every engine provides: how gradient runs an artifact the way its target would,
//! without a container engine.

use std::path::{Path, PathBuf};
use tokio::process::Command;

/// A root folder to run commands in, with the environment and user to run them with (an
/// image's, as its config says; or a package's target system's).
pub struct Rootfs {
    pub root: PathBuf,
    pub env: Vec<(String, String)>,
    pub user: String,
    /// What `docker run IMAGE` runs: the entrypoint, then the command.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl Rootfs {
    /// The program `docker run IMAGE` starts (the entrypoint's first word, else the
    /// command's), if it is an executable file of the image: `Err` says why not. A bare
    /// name is looked up on the image's PATH; links are followed inside the root.
    pub fn starting_program(&self) -> Result<String, String> {
        let Some(program) = self.entrypoint.first().or(self.cmd.first()) else {
            return Err("the image has neither an entrypoint nor a command: `docker run IMAGE` has nothing to run".into());
        };
        let candidates: Vec<String> = if program.contains('/') {
            vec![program.clone()]
        } else {
            let path = self.env.iter().find(|(k, _)| k == "PATH").map_or(
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                |(_, v)| v.as_str(),
            );
            path.split(':')
                .map(|dir| format!("{dir}/{program}"))
                .collect()
        };
        candidates
            .into_iter()
            .find(|candidate| self.is_executable(candidate))
            .ok_or_else(|| format!("`{program}` is not an executable file of the image"))
    }

    /// Whether `path` (inside the image) is an executable file, following links as the
    /// image would, never out of the root.
    fn is_executable(&self, path: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        self.resolve(Path::new(path))
            .and_then(|inside| std::fs::metadata(self.root.join(inside)).ok())
            .is_some_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }

    /// `path` with every link on the way resolved inside the image (an absolute link
    /// starts again from the image's root, `..` stops at it), relative to the root.
    fn resolve(&self, path: &Path) -> Option<PathBuf> {
        use std::path::Component;
        let mut resolved = PathBuf::new();
        let mut pending: std::collections::VecDeque<std::ffi::OsString> = path
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            match Path::new(&part).components().next() {
                Some(Component::Normal(name)) => {
                    let candidate = resolved.join(name);
                    let meta = std::fs::symlink_metadata(self.root.join(&candidate)).ok()?;
                    if !meta.file_type().is_symlink() {
                        resolved = candidate;
                        continue;
                    }
                    links += 1;
                    if links > 40 {
                        return None;
                    }
                    let target = std::fs::read_link(self.root.join(&candidate)).ok()?;
                    if target.is_absolute() {
                        resolved = PathBuf::new();
                    }
                    for component in target.components().rev() {
                        pending.push_front(component.as_os_str().to_os_string());
                    }
                }
                Some(Component::ParentDir) => {
                    resolved.pop();
                }
                _ => {} // the root and `.`
            }
        }
        Some(resolved)
    }

    /// `program args` inside the root, as the image's user when this process may change
    /// user (as root), with the image's environment and no network, and the device files
    /// every engine and every system provides (`/dev/null`, `/dev/zero`, `/dev/full`,
    /// `/dev/random`, `/dev/urandom`, `/dev/tty`), bound from the host, and a private
    /// `/dev/shm` (a 64 MiB tmpfs, as Docker mounts), where `multiprocessing` makes its
    /// semaphores.
    pub fn command(&self, program: &str, args: &[String]) -> Command {
        self.command_on(program, args, false)
    }

    /// As [`Rootfs::command`], on the host's network: for a server that a smoke test asks
    /// on 127.0.0.1, as `docker run -p` lets the host reach it.
    pub fn serving_command(&self, program: &str, args: &[String]) -> Command {
        self.command_on(program, args, true)
    }

    /// A smoke command: [`Rootfs::serving_command`] for a server a smoke test asks over
    /// HTTP, else [`Rootfs::command`]; with the network it has, as the check names it.
    pub fn smoke_command(
        &self,
        program: &str,
        args: &[String],
        serving: bool,
    ) -> (Command, &'static str) {
        match serving {
            true => (self.serving_command(program, args), "the host's network"),
            false => (self.command(program, args), "no network"),
        }
    }

    fn command_on(&self, program: &str, args: &[String], host_network: bool) -> Command {
        let mut command = Command::new("unshare");
        let root = gradient_python::is_root();
        if !root {
            command.args(["--user", "--map-root-user"]);
        }
        if !host_network {
            command.arg("--net");
        }
        // The loader finds `$ORIGIN` through /proc/self/exe: a fresh /proc, as an engine mounts.
        command
            .args(["--mount", "--pid", "--fork"])
            .arg(format!("--mount-proc={}", self.root.join("proc").display()))
            .args(["sh", "-c", WITH_DEVICES, "sh"])
            .arg(&self.root);
        if root && !self.user.is_empty() {
            command.arg(format!("--userspec={}", numeric_user(&self.user)));
        } else {
            command.arg("--");
        }
        command
            .arg(program)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// Run inside the new mount namespace, before `chroot`: `$1` the root, `$2` chroot's user
/// option (or `--`), then the program and its arguments. Binds the host's device files
/// over empty files in the root's /dev and mounts a fresh tmpfs on its /dev/shm (in this
/// namespace only: nothing is left mounted, and the root's files on disk stay plain).
const WITH_DEVICES: &str = r#"root=$1; user=$2; shift 2
mkdir -p "$root/dev" || exit 125
for node in null zero full random urandom tty; do
  [ -e "/dev/$node" ] || continue
  [ -e "$root/dev/$node" ] || : > "$root/dev/$node" || exit 125
  mount --bind "/dev/$node" "$root/dev/$node" || exit 125
done
mkdir -p "$root/dev/shm" && mount -t tmpfs -o mode=1777,size=64m shm "$root/dev/shm" || exit 125
if [ "$user" = -- ]; then exec chroot "$root" "$@"; fi
exec chroot "$user" "$root" "$@""#;

/// `app` → `1000:1000` through the image's own /etc/passwd is not read here: gradient's
/// images name their user by number already; a name is passed on as it is.
fn numeric_user(user: &str) -> String {
    if user.contains(':') {
        user.to_string()
    } else if user.parse::<u32>().is_ok() {
        format!("{user}:{user}")
    } else {
        user.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_starting_program_is_found_through_path_and_links_without_leaving_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        executable(&root.join("usr/local/bin/app"));
        executable(&root.join("usr/bin/tool"));
        std::fs::write(root.join("usr/bin/plain"), "not executable").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/usr/bin/tool", root.join("usr/local/bin/abs")).unwrap();
        // Climbs above the root: resolved inside it, where there is no /bin/sh (the host has
        // one, executable: found only if the link left the root).
        symlink(
            "../../../../../../../../bin/sh",
            root.join("usr/local/bin/up"),
        )
        .unwrap();
        let image = |entrypoint: &[&str], cmd: &[&str]| Rootfs {
            root: root.to_path_buf(),
            env: vec![("PATH".into(), "/usr/local/bin:/bin".into())],
            user: String::new(),
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            image(&["/usr/local/bin/app"], &[])
                .starting_program()
                .unwrap(),
            "/usr/local/bin/app"
        );
        assert_eq!(
            image(&["app", "--x"], &[]).starting_program().unwrap(),
            "/usr/local/bin/app"
        );
        assert_eq!(
            image(&[], &["tool"]).starting_program().unwrap(),
            "/bin/tool"
        );
        assert!(image(&["/usr/local/bin/abs"], &[])
            .starting_program()
            .is_ok());
        assert!(image(&["/bin/tool"], &[]).starting_program().is_ok());
        assert!(image(&["/usr/local/bin/up"], &[])
            .starting_program()
            .is_err());
        assert!(image(&["/usr/bin/plain"], &[]).starting_program().is_err());
        assert!(image(&["/usr/local/bin/does-not-exist"], &[])
            .starting_program()
            .is_err());
        assert!(image(&[], &[])
            .starting_program()
            .unwrap_err()
            .contains("nothing to run"));
    }
}
