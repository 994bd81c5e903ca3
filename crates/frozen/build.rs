//! Builds the launcher (crates/launcher) as a small, stripped binary and hands its path to
//! the crate, which embeds it: every frozen executable starts with these bytes.

use std::path::PathBuf;
use std::process::Command;

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
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let target_dir = out.join("launcher-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        // No path of this machine in the bytes every frozen executable carries: panic
        // locations name dependencies by their place in the registry, the launcher by its
        // place in the workspace (docs/reproducibility.md).
        // Statically linked (glibc's libc.a, libgcc_eh): the launcher needs no library of
        // the target. Rust's standard library links libgcc_s.so.1 for unwinding even with
        // panic = "abort", and a target with only glibc lacks it.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!(
                "{}\x1f-Ctarget-feature=+crt-static",
                remapped_paths(&manifest_dir)
            ),
        )
        .args([
            "build",
            "--release",
            "--quiet",
            "--features",
            "fast-inflate",
            "--manifest-path",
        ])
        .arg(launcher.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Its own profile: stripped and fast (it inflates and hashes the whole payload on a
        // first run), whatever the workspace's release profile says.
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
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the launcher failed");
    let binary = target_dir.join("release").join("gradient-launcher");
    println!("cargo:rustc-env=GRADIENT_LAUNCHER={}", binary.display());
}

/// `--remap-path-prefix` flags (in `CARGO_ENCODED_RUSTFLAGS` form) for the places a build
/// machine's paths come from: cargo's home (the registry's sources), the workspace, and
/// rustc's sysroot (the standard library's sources, when installed).
fn remapped_paths(manifest_dir: &std::path::Path) -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let workspace = manifest_dir.join("../..").canonicalize().ok();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    [
        (cargo_home, "/cargo"),
        (workspace, "/gradient"),
        (sysroot, "/rustc-sysroot"),
    ]
    .into_iter()
    .filter_map(|(from, to)| Some(format!("--remap-path-prefix={}={to}", from?.display())))
    .collect::<Vec<_>>()
    .join("\x1f")
}
