//! The tier cache: an unchanged rebuild reuses every tier, and a damaged entry is noticed
//! by its digest, said on stderr, and built again.

use crate::util::*;
use std::path::{Path, PathBuf};

/// The cached copies of `suffix` files under `cache/tiers`.
fn cached_copies(cache: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(cache.join("tiers")).unwrap().flatten() {
        for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
            if file.file_name().to_string_lossy().ends_with(suffix) {
                found.push(file.path());
            }
        }
    }
    found
}

#[test]
fn an_unchanged_rebuild_reuses_every_tier_and_a_damaged_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let build = || {
        run(gradient()
            .env("GRADIENT_CACHE_DIR", &cache)
            .args(["build", "--to", "wheel,zipapp"])
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(&out))
    };
    let first = build();
    assert!(first.status.success());
    let pyz = only_file(&out, ".pyz");
    let digest = sha256_file(&pyz);
    assert!(!stderr(&first).contains("reused"));

    // Nothing changed: every tier is reused, smoke results included, and the files stay.
    let second = build();
    assert!(second.status.success());
    let err = stderr(&second);
    assert!(err.contains("zipapp: reused sampleapp-1.2.3.pyz"), "{err}");
    assert!(
        err.contains("wheel: reused sampleapp-1.2.3-py3-none-any.whl"),
        "{err}"
    );
    assert!(!err.contains("smoke `"), "no smoke test runs again: {err}");
    let manifest: serde_json::Value = read_json(&out.join("gradient-manifest.json"));
    for artifact in manifest["artifacts"].as_array().unwrap() {
        assert_eq!(artifact["reused"], true, "{artifact}");
        assert_eq!(artifact["smoke"]["passed"], true, "{artifact}");
    }
    assert_eq!(sha256_file(&pyz), digest);

    // A cached file damaged in place (same size): noticed when it must be copied out, said,
    // and the tier built again with the same bytes.
    let copies = cached_copies(&cache, ".pyz");
    assert_eq!(copies.len(), 1);
    let mut bytes = std::fs::read(&copies[0]).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&copies[0], &bytes).unwrap();
    std::fs::remove_file(&pyz).unwrap();
    let third = build();
    assert!(third.status.success());
    let err = stderr(&third);
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains("building it again"), "{err}");
    assert!(
        err.contains("zipapp: smoke `"),
        "the rebuilt file is smoke-tested: {err}"
    );
    assert_eq!(sha256_file(&pyz), digest);
    let repaired = cached_copies(&cache, ".pyz");
    assert_eq!(
        sha256_file(&repaired[0]),
        digest,
        "the cache holds a good copy again"
    );

    // A description that does not parse is damage too.
    let entry = repaired[0].with_file_name("entry.json");
    std::fs::write(&entry, b"{ not json").unwrap();
    let fourth = build();
    assert!(fourth.status.success());
    assert!(
        stderr(&fourth).contains("does not parse"),
        "{}",
        stderr(&fourth)
    );
    assert_eq!(sha256_file(&pyz), digest);

    // --rebuild builds again even with an intact entry.
    let fifth = run(gradient()
        .env("GRADIENT_CACHE_DIR", &cache)
        .args(["build", "--rebuild", "--no-smoke", "--to", "zipapp"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&out));
    assert!(fifth.status.success());
    assert!(
        stderr(&fifth).contains("zipapp: wrote"),
        "{}",
        stderr(&fifth)
    );
    assert_eq!(sha256_file(&pyz), digest);
}
