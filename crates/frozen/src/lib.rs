//! gradient-frozen: the "target has a libc" rung: one executable that carries its own
//! CPython and needs no Python on the target.
//!
//! ```text
//!  launcher (crates/launcher, embedded) ─┐
//!  runtime.tar.gz (the bundle, cached) ──┼─► NAME-VERSION-linux-x86_64
//!  app.tar.gz (site-packages, launch.txt)┤
//!  trailer (offset, length, sha256, name)┘
//! ```
//! The runtime part is compressed once per runtime bundle and reused; each build writes only
//! the app part. Both parts are tar streams in gzip members, read back to back.

mod assemble;
mod pyinstaller;
mod tier;

pub use assemble::{assemble, staging_areas, Frozen};
pub use tier::FrozenTier;

use std::path::{Path, PathBuf};

/// The launcher for the machine gradient was built on ([`HOST_MACHINE`]): what every frozen
/// executable for that machine starts with.
pub const LAUNCHER: &[u8] = include_bytes!(env!("GRADIENT_LAUNCHER"));

/// The machine (`uname -m`: `x86_64`, `aarch64`) [`LAUNCHER`] runs on.
pub const HOST_MACHINE: &str = env!("GRADIENT_LAUNCHER_MACHINE");

/// The machines gradient knows a launcher for, built or not (see [`launcher`]).
pub const MACHINES: [&str; 2] = ["x86_64", "aarch64"];

// Every machine but the host's, from the same sources, when gradient was built where it
// could link them (`build.rs`); an empty file otherwise, and for the host's (`LAUNCHER`).
const X86_64_CROSS: &[u8] = include_bytes!(env!("GRADIENT_LAUNCHER_X86_64"));
const AARCH64_CROSS: &[u8] = include_bytes!(env!("GRADIENT_LAUNCHER_AARCH64"));

/// The launcher for `machine` (as `uname -m` names it), or None when this gradient was built
/// without one: `build.rs` then said what to install.
pub fn launcher(machine: &str) -> Option<&'static [u8]> {
    if machine == HOST_MACHINE {
        return Some(LAUNCHER);
    }
    let cross = match machine {
        "x86_64" => X86_64_CROSS,
        "aarch64" => AARCH64_CROSS,
        _ => return None,
    };
    (!cross.is_empty()).then_some(cross)
}

/// Why a frozen executable could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FrozenError {
    #[error(transparent)]
    Entry(#[from] gradient_core::EntryError),
    /// Only for builders that run one script (the pyinstaller engine): gradient's own
    /// single-file tiers are multi-call files instead.
    #[error("{project} has several console scripts ({scripts}) and none is named like the project, and the pyinstaller engine runs only one")]
    AmbiguousEntry { project: String, scripts: String },
    #[error(transparent)]
    Wheel(#[from] gradient_wheel::WheelError),
    #[error(transparent)]
    Archive(#[from] gradient_archive::ArchiveError),
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error("the default script `{script}` is a legacy `scripts=` file, which the pyinstaller engine cannot run")]
    PyInstallerLegacyScript { script: String },
    #[error("PyInstaller failed:\n{detail}")]
    PyInstaller { detail: String },
    #[error("this gradient was built without a launcher for {machine}")]
    NoLauncher { machine: String },
    #[error("the pyinstaller engine builds for the host's platform only, not for {platform}")]
    PyInstallerForeign { platform: gradient_core::Platform },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for FrozenError {
    fn hint(&self) -> Option<String> {
        match self {
            FrozenError::Entry(error) => error.hint(),
            FrozenError::AmbiguousEntry { .. } => Some("choose it with `entry = \"NAME\"` in [tool.gradient], or use the default frozen engine, which runs each".into()),
            FrozenError::Wheel(error) => error.hint(),
            FrozenError::Python(error) => error.hint(),
            FrozenError::NoLauncher { .. } => Some("build gradient where the cross toolchain is installed (rustup target add aarch64-unknown-linux-gnu; apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross), as .ci/run does".into()),
            FrozenError::PyInstallerForeign { .. } => Some("use the default frozen engine, which builds for every platform".into()),
            FrozenError::PyInstallerLegacyScript { .. } => Some("use the default frozen engine, or choose a console script with `entry = \"NAME\"` in [tool.gradient]".into()),
            _ => None,
        }
    }
}

/// The `FrozenError::Io` for `action` on `path`, for `map_err`.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FrozenError {
    let path = path.to_path_buf();
    move |source| FrozenError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::{launcher, HOST_MACHINE, LAUNCHER, MACHINES};

    /// Whether `needle` occurs in `haystack`.
    fn holds(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Whether a missing cross launcher or emulator fails the test rather than skipping it,
    /// as `build.rs` fails without the cross toolchain.
    fn cross_required() -> bool {
        std::env::var_os("GRADIENT_REQUIRE_CROSS").is_some_and(|v| v == "1")
    }

    /// Skip (say so) or, under `GRADIENT_REQUIRE_CROSS=1`, fail.
    fn skip(why: &str) {
        assert!(!cross_required(), "{why} (GRADIENT_REQUIRE_CROSS=1)");
        eprintln!("skipped: {why}");
    }

    /// Every launcher this gradient carries, by machine; the missing ones are skipped.
    fn launchers() -> Vec<(&'static str, &'static [u8])> {
        MACHINES
            .into_iter()
            .filter_map(|machine| match launcher(machine) {
                Some(bytes) => Some((machine, bytes)),
                None => {
                    skip(&format!(
                        "gradient was built without a launcher for {machine}"
                    ));
                    None
                }
            })
            .collect()
    }

    #[test]
    fn the_host_launcher_is_the_one_for_the_host_machine() {
        assert!(MACHINES.contains(&HOST_MACHINE));
        assert_eq!(launcher(HOST_MACHINE), Some(LAUNCHER));
        assert_eq!(launcher(std::env::consts::ARCH), Some(LAUNCHER));
        assert_eq!(launcher("riscv64"), None);
    }

    #[test]
    fn the_embedded_launchers_name_no_path_of_the_machine_that_built_them() {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap();
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo")
            });
        for (machine, bytes) in launchers() {
            for path in [&workspace, &cargo_home.join("registry")] {
                let path = path.to_string_lossy();
                assert!(
                    !holds(bytes, &path),
                    "the launcher for {machine} holds `{path}`"
                );
            }
            assert!(
                holds(bytes, "GRADIENT_FROZEN_CACHE"),
                "the launcher for {machine} is searched"
            );
        }
    }

    #[test]
    fn the_embedded_launcher_needs_no_library_of_the_target() {
        // Rust's standard library links libgcc_s.so.1 for unwinding, even with panic=abort:
        // a target with only glibc could not start a frozen executable at all.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launcher");
        std::fs::write(&path, super::LAUNCHER).unwrap();
        let facts = gradient_python::elf::read(&path)
            .unwrap()
            .expect("an ELF file");
        assert_eq!(facts.needed, Vec::<String>::new());
    }

    #[test]
    fn every_launcher_is_a_static_stripped_executable_for_its_machine() {
        use goblin::elf::{header, program_header::PT_INTERP, section_header::SHT_SYMTAB};
        for (machine, bytes) in launchers() {
            let elf = goblin::elf::Elf::parse(bytes).expect("an ELF file");
            let expected = match machine {
                "x86_64" => header::EM_X86_64,
                "aarch64" => header::EM_AARCH64,
                other => panic!("no ELF machine known for {other}"),
            };
            assert_eq!(elf.header.e_machine, expected, "{machine}");
            assert!(elf.is_64 && elf.little_endian, "{machine}");
            // No program interpreter and no library to load: nothing of the target's.
            assert!(
                elf.program_headers.iter().all(|h| h.p_type != PT_INTERP),
                "the launcher for {machine} asks for a program interpreter"
            );
            assert_eq!(elf.libraries, Vec::<&str>::new(), "{machine}");
            // Stripped: no symbol table and no debugging information.
            for section in &elf.section_headers {
                let name = elf.shdr_strtab.get_at(section.sh_name).unwrap_or("");
                assert!(
                    section.sh_type != SHT_SYMTAB && !name.starts_with(".debug"),
                    "the launcher for {machine} keeps `{name}`"
                );
            }
        }
    }

    /// What running `bytes` with no payload does: exit status and standard error, with its
    /// own path written `APP`; None when this machine cannot run it (no emulator).
    fn run_bare(bytes: &[u8]) -> Option<(Option<i32>, String)> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut tries = 0;
        let output = loop {
            match std::process::Command::new(&path).output() {
                Ok(output) => break output,
                // Exec format error: no binfmt_misc entry runs this machine's programs.
                Err(e) if e.raw_os_error() == Some(8) => return None,
                // Text file busy: a process started by another test at the moment the file
                // was open for writing still holds it.
                Err(e) if e.raw_os_error() == Some(26) && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("running `{}`: {e}", path.display()),
            }
        };
        let stderr =
            String::from_utf8_lossy(&output.stderr).replace(&*path.to_string_lossy(), "APP");
        Some((output.status.code(), stderr))
    }

    #[test]
    fn every_launcher_run_without_a_payload_says_so_as_the_host_one_does() {
        let host = run_bare(LAUNCHER).expect("the host runs its own launcher");
        assert_eq!(host.0, Some(1));
        assert!(
            host.1
                .starts_with("APP: this executable carries no app payload"),
            "{}",
            host.1
        );
        for (machine, bytes) in launchers() {
            match run_bare(bytes) {
                Some(run) => assert_eq!(run, host, "the launcher for {machine}"),
                None => skip(&format!("no emulator for linux/{machine}")),
            }
        }
    }
}
