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
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let target_dir = out.join("launcher-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
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
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the launcher failed");
    let binary = target_dir.join("release").join("gradient-launcher");
    println!("cargo:rustc-env=GRADIENT_LAUNCHER={}", binary.display());
}
