//! Running an image without an engine: its layers unpacked in order into a folder (with
//! whiteouts applied), then a command run there through `chroot`, inside new network, mount
//! and PID namespaces with a fresh /proc, with the image's environment and user. What the oci tier's smoke
//! test uses, so the tarball itself is checked whether or not an engine is present.

use crate::base::{read_image, unpack};
use crate::{io, OciError};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// An image unpacked into a root folder, with what its config says about running it.
pub struct Rootfs {
    pub root: PathBuf,
    pub env: Vec<(String, String)>,
    pub user: String,
    /// What `docker run IMAGE` runs: the entrypoint, then the command.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// Unpack the image tarball into `scratch/rootfs`.
pub fn unpack_image(tarball: &Path, scratch: &Path) -> Result<Rootfs, OciError> {
    let layout = scratch.join("layout");
    unpack(tarball, &layout)?;
    let image = read_image(&layout, &tarball.display().to_string())?;
    let root = scratch.join("rootfs");
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    for layer in &image.layers {
        apply_layer(&layer.path, &root)?;
    }
    let proc = root.join("proc");
    std::fs::create_dir_all(&proc).map_err(io("create", &proc))?;
    Ok(rootfs_of(&image, root))
}

/// The root an earlier [`unpack_image`] of `tarball` left in `scratch`.
pub fn unpacked_image(tarball: &Path, scratch: &Path) -> Result<Rootfs, OciError> {
    let image = read_image(&scratch.join("layout"), &tarball.display().to_string())?;
    Ok(rootfs_of(&image, scratch.join("rootfs")))
}

/// How to run commands in `root` as the image's config says: its environment and user.
fn rootfs_of(image: &crate::base::Base, root: PathBuf) -> Rootfs {
    let run = &image.config["config"];
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let env = strings(&run["Env"])
        .into_iter()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Rootfs {
        root,
        env,
        user: run["User"].as_str().unwrap_or_default().to_string(),
        entrypoint: strings(&run["Entrypoint"]),
        cmd: strings(&run["Cmd"]),
    }
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

/// Unpack one layer blob over `root`: `.wh.NAME` removes NAME, `.wh..wh..opq` empties its
/// folder, everything else is written (the tar reader refuses paths that leave `root`).
/// As root, each file gets the owner the layer gives it, as an engine does: the commands
/// then run as the image's user (`chroot --userspec`), who must own its home folder as in
/// the image, or an app that writes there (ansible's `~/.ansible/tmp`) fails here and not
/// under the engine. Without root the commands run as the namespace's root, who owns all.
fn apply_layer(blob: &Path, root: &Path) -> Result<(), OciError> {
    let file = std::fs::File::open(blob).map_err(io("open", blob))?;
    let mut reader = std::io::BufReader::new(file);
    let mut magic = [0u8; 2];
    reader.read_exact(&mut magic).map_err(io("read", blob))?;
    let file = std::fs::File::open(blob).map_err(io("open", blob))?;
    let stream: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(gradient_python::is_root());
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io("read", blob))? {
        let mut entry = entry.map_err(io("read", blob))?;
        let path = entry.path().map_err(io("read", blob))?.into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name.as_deref().filter(|n| n.starts_with(".wh.")) {
            let parent = root.join(path.parent().unwrap_or(Path::new("")));
            if name == ".wh..wh..opq" {
                for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                    remove(&child.path());
                }
            } else {
                remove(&parent.join(&name[4..]));
            }
            continue;
        }
        entry
            .unpack_in(root)
            .map_err(io("unpack a layer into", root))?;
    }
    Ok(())
}

fn remove(path: &Path) {
    if path.is_dir() && !path.is_symlink() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    #[test]
    fn a_layer_unpacked_as_root_keeps_the_owners_it_gives_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer.tar");
        let mut layer = tar::Builder::new(std::fs::File::create(&blob).unwrap());
        for (path, uid) in [("home/app/", 1000u64), ("etc/", 0)] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_size(0);
            layer
                .append_data(&mut header, path, std::io::empty())
                .unwrap();
        }
        layer.into_inner().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        apply_layer(&blob, &root).unwrap();
        let owner = |path: &str| std::fs::metadata(root.join(path)).unwrap().uid();
        if gradient_python::is_root() {
            assert_eq!(
                owner("home/app"),
                1000,
                "the image's user owns its home, as in the image"
            );
            assert_eq!(owner("etc"), 0);
        } else {
            // Unpacked as this user, who is the namespace's root the commands run as.
            let me = std::fs::metadata(dir.path()).unwrap().uid();
            assert_eq!(owner("home/app"), me);
        }
    }

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
