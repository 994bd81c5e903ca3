//! What the foreign-platform tests share: whether a missing tool fails them
//! (`GRADIENT_REQUIRE_CROSS=1`, as CI sets) or skips them, and whether this host can make
//! and run Debian's arm64 CPython (apt-get, and qemu-user registered for aarch64).

#![allow(dead_code)] // each test file uses part of it

use std::path::Path;

/// Whether a missing tool is a failure rather than a skip.
pub fn cross_required() -> bool {
    std::env::var_os("GRADIENT_REQUIRE_CROSS").is_some_and(|v| v == "1")
}

/// Skip with `why`, or fail with it when required.
pub fn skip(why: &str) {
    assert!(!cross_required(), "{why} (GRADIENT_REQUIRE_CROSS=1)");
    eprintln!("skipped: {why}");
}

/// Whether a Debian arm64 root can be made and run here; says why not (or fails, when
/// required).
pub fn can_run_debian_arm64() -> bool {
    let apt = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join("apt-get").is_file());
    let qemu = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    let why = match (apt, qemu) {
        (true, true) => return true,
        (false, _) => "apt-get is not on PATH (not a Debian-family host)",
        (true, false) => "qemu-user's aarch64 handler is not registered in binfmt_misc",
    };
    skip(why);
    false
}
