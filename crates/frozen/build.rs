//! Builds the launcher (crates/launcher) as a small, stripped binary and hands its path to
//! the crate, which embeds it: every frozen executable starts with these bytes.
//!
//! The launcher for the machine running this script is always built; the launcher for each
//! other machine in [`MACHINES`] is built from the same sources when its Rust standard
//! library and a C cross toolchain with a static glibc are installed, and is otherwise left
//! out with a warning (an error under `GRADIENT_REQUIRE_CROSS=1`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A machine a frozen executable can be made for.
struct Machine {
    /// As `uname -m` and the crate's `launcher()` name it.
    name: &'static str,
    triple: &'static str,
    /// The C compiler driver that links for it from another machine: it finds the
    /// machine's `crt1.o`, `libc.a` and `libgcc_eh.a`.
    cross_gcc: &'static str,
    /// Debian's packages providing `cross_gcc` and the static glibc it links.
    packages: &'static str,
}

const MACHINES: [Machine; 2] = [
    Machine {
        name: "x86_64",
        triple: "x86_64-unknown-linux-gnu",
        cross_gcc: "x86_64-linux-gnu-gcc",
        packages: "gcc-x86-64-linux-gnu libc6-dev-amd64-cross",
    },
    Machine {
        name: "aarch64",
        triple: "aarch64-unknown-linux-gnu",
        cross_gcc: "aarch64-linux-gnu-gcc",
        packages: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    },
];

/// Set to `1`, a launcher that cannot be built for a machine of [`MACHINES`] fails the build.
const REQUIRE_CROSS: &str = "GRADIENT_REQUIRE_CROSS";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let launcher = manifest_dir.join("../launcher");
    println!("cargo:rerun-if-changed={}", launcher.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        launcher.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../../Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    println!("cargo:rerun-if-env-changed={REQUIRE_CROSS}");
    let require_cross = std::env::var_os(REQUIRE_CROSS).is_some_and(|v| v == "1");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let host = std::env::var("HOST").expect("cargo sets it");
    let host_machine = host.split('-').next().unwrap_or_default().to_string();
    let nested = Nested {
        manifest: launcher.join("Cargo.toml"),
        rustflags: format!(
            "{}\x1f-Ctarget-feature=+crt-static",
            remapped_paths(&manifest_dir)
        ),
    };

    // The foreign launchers are started first and built alongside the host's: the nested
    // builds end in one long single-threaded step each (LTO with one codegen unit).
    let mut foreign = Vec::new();
    for machine in MACHINES.iter().filter(|m| m.name != host_machine) {
        let unbuilt = match missing(machine) {
            Ok(linker) => {
                let target_dir = out.join(format!("launcher-target-{}", machine.name));
                let binary = target_dir
                    .join(machine.triple)
                    .join("release")
                    .join("gradient-launcher");
                match nested.spawn(&target_dir, Some((machine, &linker))) {
                    Ok(child) => {
                        foreign.push((machine, child, binary));
                        continue;
                    }
                    Err(error) => format!("cargo could not be started: {error}"),
                }
            }
            Err(what) => {
                // Installing what is missing must bring the launcher in without touching
                // the sources: the Rust targets, and Debian's package database.
                if let Some(rustlib) = rustlib() {
                    println!("cargo:rerun-if-changed={}", rustlib.display());
                }
                let dpkg = Path::new("/var/lib/dpkg/status");
                if dpkg.exists() {
                    println!("cargo:rerun-if-changed={}", dpkg.display());
                }
                what
            }
        };
        left_out(machine, &unbuilt, require_cross, &out);
    }

    let target_dir = out.join("launcher-target");
    let status = nested
        .spawn(&target_dir, None)
        .and_then(|mut child| child.wait())
        .expect("cargo runs");
    assert!(status.success(), "building the launcher failed");
    let binary = target_dir.join("release").join("gradient-launcher");
    println!("cargo:rustc-env=GRADIENT_LAUNCHER={}", binary.display());
    println!("cargo:rustc-env=GRADIENT_LAUNCHER_MACHINE={host_machine}");

    for (machine, mut child, binary) in foreign {
        match child.wait() {
            Ok(status) if status.success() => println!(
                "cargo:rustc-env={}={}",
                env_name(machine),
                binary.display()
            ),
            Ok(status) => left_out(
                machine,
                &format!("its nested cargo build failed ({status}; its errors are above in this build script's output)"),
                require_cross,
                &out,
            ),
            Err(error) => left_out(machine, &error.to_string(), require_cross, &out),
        }
    }
    // The host's launcher is `GRADIENT_LAUNCHER`; its own variable names an empty file.
    if let Some(machine) = MACHINES.iter().find(|m| m.name == host_machine) {
        println!(
            "cargo:rustc-env={}={}",
            env_name(machine),
            empty_file(&out).display()
        );
    }
}

/// The nested cargo that builds the launcher, with what every build of it shares.
struct Nested {
    manifest: PathBuf,
    rustflags: String,
}

impl Nested {
    /// Start building the launcher in `target_dir`: for the machine running this script, or
    /// for `cross`'s machine, linked by `cross`'s linker.
    fn spawn(
        &self,
        target_dir: &Path,
        cross: Option<(&Machine, &OsString)>,
    ) -> std::io::Result<Child> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            // No path of this machine in the bytes every frozen executable carries: panic
            // locations name dependencies by their place in the registry, the launcher by
            // its place in the workspace (docs/reproducibility.md).
            // Statically linked (glibc's libc.a, libgcc_eh): the launcher needs no library of
            // the target. Rust's standard library links libgcc_s.so.1 for unwinding even with
            // panic = "abort", and a target with only glibc lacks it.
            .env("CARGO_ENCODED_RUSTFLAGS", &self.rustflags)
            .args([
                "build",
                "--release",
                "--quiet",
                "--features",
                "fast-inflate",
                "--manifest-path",
            ])
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(target_dir);
        if let Some((machine, linker)) = cross {
            command
                .args(["--target", machine.triple])
                .env(linker_variable(machine), linker);
        }
        command
            // Its own profile: stripped and fast (it inflates and hashes the whole payload on
            // a first run), whatever the workspace's release profile says.
            .env("CARGO_PROFILE_RELEASE_STRIP", "true")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
            .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MAKEFLAGS")
            .spawn()
    }
}

/// `GRADIENT_LAUNCHER_AARCH64`: the crate's variable for `machine`'s launcher.
fn env_name(machine: &Machine) -> String {
    format!("GRADIENT_LAUNCHER_{}", machine.name.to_uppercase())
}

/// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER`: cargo's linker for `machine`, which a
/// builder may set to use another cross linker than [`Machine::cross_gcc`].
fn linker_variable(machine: &Machine) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        machine.triple.to_uppercase().replace('-', "_")
    )
}

/// The linker for `machine` when everything its launcher needs is installed, or what is not.
fn missing(machine: &Machine) -> Result<OsString, String> {
    let variable = linker_variable(machine);
    println!("cargo:rerun-if-env-changed={variable}");
    let mut what = Vec::new();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let has_std = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", machine.triple])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .is_some_and(|mut entries| {
            entries.any(|e| {
                e.is_ok_and(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("libstd-") && name.ends_with(".rlib")
                })
            })
        });
    if !has_std {
        what.push(format!(
            "Rust's standard library for {} (`rustup target add {}`)",
            machine.triple, machine.triple
        ));
    }
    let linker = std::env::var_os(&variable).unwrap_or_else(|| machine.cross_gcc.into());
    // The driver answers a bare name for a file it cannot find.
    for library in ["libc.a", "libgcc_eh.a"] {
        match Command::new(&linker)
            .arg(format!("-print-file-name={library}"))
            .output()
        {
            Ok(o) if o.status.success() && o.stdout.starts_with(b"/") => {}
            Ok(_) => what.push(format!(
                "`{library}` for {} where `{}` looks (Debian: `apt-get install {}`)",
                machine.name,
                linker.to_string_lossy(),
                machine.packages
            )),
            Err(_) => {
                what.push(format!(
                    "the cross linker `{}` (Debian: `apt-get install {}`, or name one in {variable})",
                    linker.to_string_lossy(),
                    machine.packages
                ));
                break;
            }
        }
    }
    if what.is_empty() {
        Ok(linker)
    } else {
        Err(what.join("; "))
    }
}

/// Say that `machine` gets no launcher and why, or fail under [`REQUIRE_CROSS`]; the crate's
/// variable for it then names an empty file.
fn left_out(machine: &Machine, why: &str, require_cross: bool, out: &Path) {
    let message = format!(
        "no launcher for {} frozen executables: missing {why}",
        machine.name
    );
    if require_cross {
        panic!("{message} ({REQUIRE_CROSS}=1 requires it)");
    }
    println!("cargo:warning={message}");
    println!(
        "cargo:rustc-env={}={}",
        env_name(machine),
        empty_file(out).display()
    );
}

/// An empty file in `OUT_DIR`: what the crate embeds for a launcher it does not have.
fn empty_file(out: &Path) -> PathBuf {
    let path = out.join("no-launcher");
    std::fs::write(&path, b"").expect("OUT_DIR is writable");
    path
}

/// rustc's sysroot.
fn sysroot() -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// The folder of the sysroot holding one folder per installed Rust target.
fn rustlib() -> Option<PathBuf> {
    Some(sysroot()?.join("lib").join("rustlib")).filter(|p| p.is_dir())
}

/// `--remap-path-prefix` flags (in `CARGO_ENCODED_RUSTFLAGS` form) for the places a build
/// machine's paths come from: cargo's home (the registry's sources), the workspace, and
/// rustc's sysroot (the standard library's sources, when installed).
fn remapped_paths(manifest_dir: &Path) -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let workspace = manifest_dir.join("../..").canonicalize().ok();
    [
        (cargo_home, "/cargo"),
        (workspace, "/gradient"),
        (sysroot(), "/rustc-sysroot"),
    ]
    .into_iter()
    .filter_map(|(from, to)| Some(format!("--remap-path-prefix={}={to}", from?.display())))
    .collect::<Vec<_>>()
    .join("\x1f")
}
