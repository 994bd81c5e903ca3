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

/// The first regular file under `dir` whose path holds `part` (in name order).
fn cached_file(dir: &Path, part: &str) -> PathBuf {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .find(|p| p.to_string_lossy().contains(part))
        .unwrap_or_else(|| panic!("no *{part}* under {}", dir.display()))
}

/// Flip one bit in the middle of `path`, in place, as bit rot does: the case of an ASCII
/// letter (in a comment, for Python source), so that damaged code still compiles and
/// nothing but a check of the bytes can notice.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let start = match path.extension() {
        Some(ext) if ext == "py" => {
            let middle = bytes.len() / 2;
            middle + bytes[middle..].windows(2).position(|w| w == b"# ").unwrap()
        }
        _ => bytes.len() / 2,
    };
    let at = (start..bytes.len())
        .find(|&i| bytes[i].is_ascii_alphabetic())
        .expect("a letter after the middle");
    bytes[at] ^= 0x20;
    // A file of the cache shares its bytes with nothing else (uv's cache, say), or damage
    // could not be repaired by installing again; and this test must never damage more
    // than its own cache. Written beside and renamed, in case.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(path).unwrap().nlink(),
        1,
        "{} is a hard link",
        path.display()
    );
    let beside = path.with_extension("flipped");
    std::fs::write(&beside, &bytes).unwrap();
    std::fs::set_permissions(&beside, std::fs::metadata(path).unwrap().permissions()).unwrap();
    std::fs::rename(&beside, path).unwrap();
}

#[test]
fn damaged_cached_trees_are_named_made_again_and_never_reach_an_artifact() {
    if !require("dpkg-deb") || !require("rpm") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A cache of its own: this test damages it.
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let build = |extra: &[&str]| {
        let output = run(gradient()
            .env("GRADIENT_CACHE_DIR", &cache)
            .args(["build", "--no-smoke", "--to", "zipapp,frozen,deb,rpm"])
            .args(extra)
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(&out));
        assert!(output.status.success());
        stderr(&output)
    };
    let suffixes = [".pyz", "-linux-x86_64", ".deb", ".rpm"];
    let digests = || -> Vec<String> {
        suffixes
            .iter()
            .map(|suffix| sha256_file(&only_file(&out, suffix)))
            .collect()
    };
    build(&[]);
    let good = digests();
    let says_damaged = |err: &str, file: &Path| {
        let shown = file.display().to_string();
        assert!(
            err.lines()
                .any(|l| l.contains(&shown) && l.contains("damaged")),
            "no warning names {shown}:\n{err}"
        );
    };

    // The runtime bundle (libpython) and the installed wheelhouse (a module's source), with
    // what is made from the bundle gone, as after a cleanup: both are read again.
    let libpython = cached_file(&cache.join("runtimes"), "/libpython");
    let source = cached_file(&cache.join("wheelhouses"), "click/core.py");
    flip_a_byte(&libpython);
    flip_a_byte(&source);
    std::fs::remove_dir_all(cache.join("frozen")).unwrap();
    std::fs::remove_dir_all(cache.join("ospkg/stripped")).unwrap();
    let err = build(&["--rebuild"]);
    says_damaged(&err, &libpython);
    says_damaged(&err, &source);
    assert_eq!(digests(), good, "the artifacts carry no damaged byte");

    // The installed wheelhouse's compiled code, the stripped runtime of the packages and the
    // frozen tier's packed runtime part.
    let extension = cached_file(&cache.join("wheelhouses"), ".so");
    let stripped = cached_file(&cache.join("ospkg/stripped"), "/libpython");
    let part = cached_file(&cache.join("frozen"), ".tar.gz");
    for file in [&extension, &stripped, &part] {
        flip_a_byte(file);
    }
    let err = build(&["--rebuild"]);
    for file in [&extension, &stripped, &part] {
        says_damaged(&err, file);
    }
    assert_eq!(digests(), good, "the artifacts carry no damaged byte");

    // Everything was made again whole: nothing more to say.
    let err = build(&["--rebuild"]);
    assert!(!err.contains("damaged"), "{err}");
    assert_eq!(digests(), good);
}
