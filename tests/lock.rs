//! Building from the project's own lock: every tier that carries the dependencies carries
//! the versions and files the lock pins (uv.lock, pylock.toml), the SBOMs say so, and a lock
//! that is stale, damaged, or for another project stops the build with file and line.

use crate::util::*;
use std::collections::BTreeSet;
use std::path::Path;

/// `(name, version, sha256)` of every package a published pylock.toml lists.
fn pylock_packages(path: &Path) -> BTreeSet<(String, String, String)> {
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(lock["lock-version"].as_str(), Some("1.0"));
    assert_eq!(lock["created-by"].as_str(), Some("gradient"));
    lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let files: Vec<&toml::Value> = p
                .get("wheels")
                .and_then(|w| w.as_array())
                .into_iter()
                .flatten()
                .chain(p.get("sdist"))
                .collect();
            assert_eq!(files.len(), 1, "exactly the file carried: {p}");
            assert!(files[0].get("url").is_some(), "PEP 751 wants a url: {p}");
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                files[0]["hashes"]["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(name, version, sha256)` of every Python distribution an SBOM lists.
fn sbom_packages(path: &Path) -> BTreeSet<(String, String, String)> {
    let sbom = read_json(path);
    sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:pypi/"))
        })
        .map(|c| {
            let hashes = c["hashes"].as_array().unwrap();
            assert_eq!(hashes.len(), 1, "the one file installed: {c}");
            (
                c["name"].as_str().unwrap().to_lowercase(),
                c["version"].as_str().unwrap().to_string(),
                hashes[0]["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Names of the files inside a zip archive (a .pyz).
fn zip_names(path: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    archive.file_names().map(str::to_string).collect()
}

/// Build every tier of `fixture` and check that each one that carries the dependencies
/// carries `dist` at `version` (the lock's pin, below the newest release) with the file
/// whose hash the lock gives, and that the SBOMs and the published pylock.toml agree.
fn every_tier_carries_the_pin(fixture_name: &str, lock_name: &str, dist: &str, version: &str) {
    let out = tempfile::tempdir().unwrap();
    let with_docker = docker_engine();
    let output = build(&fixture(fixture_name), out.path(), &["--all"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("as {lock_name} locks them")),
        "{text}"
    );
    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let app = fixture_name.replace('-', "");
    let published = pylock_packages(&out.path().join(format!("pylock.{app}.toml")));
    let pinned: Vec<_> = published.iter().filter(|(n, _, _)| n == dist).collect();
    assert_eq!(pinned.len(), 1, "{published:?}");
    assert_eq!(pinned[0].1, version, "{published:?}");
    // The carried file is one the project's lock lists, by its hash.
    let project_lock = std::fs::read_to_string(fixture(fixture_name).join(lock_name)).unwrap();
    assert!(
        project_lock.contains(&pinned[0].2),
        "{:?} in {lock_name}",
        pinned[0]
    );
    let requirements =
        std::fs::read_to_string(out.path().join(format!("{app}-1.0.0.lock.txt"))).unwrap();
    assert!(
        requirements.contains(&format!("from {lock_name} (sha256 ")),
        "{requirements}"
    );
    assert!(
        requirements.contains(&format!("{dist}=={version} ")),
        "{requirements}"
    );

    let built: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tier"].as_str().unwrap())
        .collect();
    let mut every = vec!["sdist", "wheel", "zipapp", "frozen", "oci", "deb", "rpm"];
    if with_docker {
        every.push("docker");
    }
    for tier in every {
        assert!(built.contains(&tier), "{tier} built: {built:?}");
    }
    let expect = format!("{dist} {version}");
    for artifact in manifest["artifacts"].as_array().unwrap() {
        let tier = artifact["tier"].as_str().unwrap();
        let smoke = &artifact["smoke"];
        assert_eq!(smoke["passed"], true, "{tier}: {smoke}");
        // The smoke command prints the version of the dependency it ran with, on the
        // artifact's own target (a venv with the lock's pins for the wheel).
        if tier != "sdist" {
            let printed = smoke["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["detail"].as_str().is_some_and(|d| d.contains(&expect)));
            assert!(printed, "{tier} printed {expect}: {smoke}");
        }
        if ["sdist", "wheel"].contains(&tier) {
            continue;
        }
        let sbom = sbom_packages(&out.path().join(artifact["sbom"]["file"].as_str().unwrap()));
        assert_eq!(
            sbom, published,
            "{tier}: the SBOM lists what the lock says is carried"
        );
        let file = out.path().join(artifact["file"].as_str().unwrap());
        let dist_info = format!("{dist}-{version}.dist-info/METADATA");
        let listing = match tier {
            "zipapp" => zip_names(&file)
                .iter()
                .map(|n| format!("/{n}\n"))
                .collect::<String>(),
            "deb" if require("dpkg-deb") => stdout(&run(std::process::Command::new("dpkg-deb")
                .arg("-c")
                .arg(&file))),
            "rpm" if require("rpm") => stdout(&run(std::process::Command::new("rpm")
                .arg("-qlp")
                .arg(&file))),
            _ => continue,
        };
        assert!(listing.contains(&dist_info), "{tier} carries {dist_info}");
        let other = listing.lines().find(|l| {
            l.contains(&format!("/{dist}-"))
                && l.contains(".dist-info/")
                && !l.contains(&format!("/{dist}-{version}.dist-info/"))
        });
        assert_eq!(other, None, "{tier}: no other {dist} beside the pinned one");
    }
}

#[test]
fn every_tier_carries_what_uv_lock_pins() {
    every_tier_carries_the_pin("uvlock-app", "uv.lock", "click", "8.1.7");
}

#[test]
fn every_tier_carries_what_pylock_toml_pins() {
    every_tier_carries_the_pin("pylock-app", "pylock.toml", "msgpack", "1.0.8");
}

/// A copy of `fixture_name` with `edit` applied to the text of its file `file`.
fn fixture_with(
    fixture_name: &str,
    file: &str,
    edit: impl Fn(&str) -> String,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(fixture_name), dir.path());
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changes {file}");
    std::fs::write(&path, edited).unwrap();
    dir
}

/// `gradient plan --json` of `project` with `extra` flags: the first tier that carries the
/// dependencies' `lock` object.
fn planned_lock(project: &Path, extra: &[&str]) -> serde_json::Value {
    let output = run(gradient()
        .args(["plan", "--json", "--to", "zipapp,sdist"])
        .arg(project)
        .args(extra));
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let tiers = plan.as_array().unwrap();
    let sdist = tiers.iter().find(|t| t["tier"] == "sdist").unwrap();
    assert!(
        sdist["lock"].is_null(),
        "the sdist carries no dependencies: {sdist}"
    );
    tiers.iter().find(|t| t["tier"] == "zipapp").unwrap()["lock"].clone()
}

#[test]
fn plan_says_which_lock_a_build_uses_and_whether_it_is_current() {
    let lock = planned_lock(&fixture("uvlock-app"), &[]);
    assert_eq!(lock["file"], "uv.lock", "{lock}");
    assert_eq!(lock["format"], "uv lock", "{lock}");
    assert_eq!(lock["current"], true, "{lock}");
    assert_eq!(lock["packages"], 1, "{lock}");

    let lock = planned_lock(&fixture("pylock-app"), &[]);
    assert_eq!(lock["file"], "pylock.toml", "{lock}");
    assert_eq!(lock["current"], true, "{lock}");

    let lock = planned_lock(&fixture("uvlock-app"), &["--no-lock"]);
    assert!(lock["file"].is_null(), "{lock}");

    // A requirement raised past the pin: the lock no longer records what pyproject asks.
    let stale = fixture_with("uvlock-app", "pyproject.toml", |t| {
        t.replace("click>=8.0", "click>=8.1.8")
    });
    let lock = planned_lock(stale.path(), &[]);
    assert_eq!(lock["current"], false, "{lock}");
    let differences = lock["differences"].to_string();
    assert!(differences.contains("click>=8.1.8"), "{differences}");

    // Two locks that disagree: the plan says which one wins and why.
    let both = fixture_with("uvlock-app", "pyproject.toml", |t| {
        t.replace("A fixture", "Two locks: a fixture")
    });
    std::fs::write(
        both.path().join("pylock.toml"),
        "lock-version = \"1.0\"\ncreated-by = \"hand\"\n[[packages]]\nname = \"click\"\nversion = \"8.1.6\"\n\
         wheels = [{ url = \"https://files.invalid/click-8.1.6-py3-none-any.whl\", hashes = { sha256 = \"abababababababababababababababababababababababababababababababab\" } }]\n",
    )
    .unwrap();
    let lock = planned_lock(both.path(), &[]);
    assert_eq!(lock["file"], "pylock.toml", "{lock}");
    let disagreements = lock["disagreements"].to_string();
    assert!(
        disagreements.contains("pylock.toml and uv.lock disagree (click 8.1.6 vs 8.1.7)")
            && disagreements.contains("gradient uses pylock.toml"),
        "{disagreements}"
    );
}

#[test]
fn a_stale_lock_stops_a_locked_build_before_anything_is_written() {
    for (fixture_name, from, to, says) in [
        ("uvlock-app", "click>=8.0", "click>=8.1.8", "click>=8.1.8"),
        (
            "pylock-app",
            "msgpack>=1.0",
            "msgpack>=1.1",
            "pins msgpack 1.0.8",
        ),
    ] {
        let project = fixture_with(fixture_name, "pyproject.toml", |t| t.replace(from, to));
        let out = project.path().join("out");
        let output = build(project.path(), &out, &["--all", "--locked"]);
        fails_with(
            &output,
            2,
            &["is out of date with pyproject.toml", says, "hint:"],
        );
        assert!(!out.exists(), "nothing written: {:?}", listing(&out));
        // The wheel alone uses the lock too: its smoke test installs the pins.
        let output = build(project.path(), &out, &["--to", "wheel", "--locked"]);
        fails_with(&output, 2, &["is out of date with pyproject.toml"]);
        assert!(!out.exists(), "nothing written: {:?}", listing(&out));
        // Without --locked the lock is used as it is, with a warning.
        let output = build(project.path(), &out, &["--to", "zipapp", "--no-smoke"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("is out of date with pyproject.toml, and is used as it is")
        );
    }
    // --locked asks for a lock: a project without one is refused.
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("sampleapp"),
        &out.path().join("dist"),
        &["--to", "zipapp", "--locked"],
    );
    fails_with(&output, 2, &["has no lock", "hint:"]);
    assert!(!out.path().join("dist").exists());
}

#[test]
fn no_lock_resolves_afresh_past_the_pin() {
    let out = tempfile::tempdir().unwrap();
    let output = build(
        &fixture("uvlock-app"),
        out.path(),
        &["--to", "zipapp", "--no-smoke", "--no-lock"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let published = pylock_packages(&out.path().join("pylock.uvlockapp.toml"));
    let click = published.iter().find(|(n, _, _)| n == "click").unwrap();
    assert_ne!(click.1, "8.1.7", "the newest click, not the lock's");
}

#[test]
fn damaged_or_foreign_locks_are_refused_with_file_and_line() {
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, &str, Edit, &[&str]); 5] = [
        (
            "pylock-app",
            "pylock.toml",
            // msgpack's sdist and every wheel for this machine taken out.
            Box::new(|t: &str| {
                t.lines()
                    .filter(|l| !l.starts_with("sdist = ") && !l.contains("x86_64"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }),
            &[
                "only wheels of `msgpack` 1.0.8, none for cpython",
                "and no sdist",
                "hint:",
            ],
        ),
        (
            "uvlock-app",
            "uv.lock",
            Box::new(|t: &str| t.replacen("[[package]]", "[[package]\n", 1)),
            &["uv.lock:", "hint:"],
        ),
        (
            "uvlock-app",
            "uv.lock",
            Box::new(|t: &str| t.replace("name = \"uvlockapp\"", "name = \"otherapp\"")),
            &["was made for the project `otherapp`, not `uvlockapp`"],
        ),
        (
            "pylock-app",
            "pylock.toml",
            Box::new(|t: &str| {
                t.replace(
                    "version = \"1.0.8\"",
                    "version = \"1.0.8\"\nmarker = \"python_version >< '3'\"",
                )
            }),
            &["pylock.toml:", "hint:"],
        ),
        (
            "pylock-app",
            "pylock.toml",
            Box::new(|t: &str| t.replace("hashes = { sha256", "hashes = { md5")),
            &["pins no file with a SHA-256 hash for `msgpack` 1.0.8"],
        ),
    ];
    for (fixture_name, file, edit, says) in cases {
        let project = fixture_with(fixture_name, file, edit);
        let out = project.path().join("out");
        let output = build(project.path(), &out, &["--to", "zipapp"]);
        fails_with(&output, 2, says);
        assert!(!out.exists(), "nothing written: {:?}", listing(&out));
    }
}

#[test]
fn a_file_whose_hash_is_not_the_locks_is_refused_and_nothing_is_installed() {
    // The lock's hashes for click 8.1.7 replaced: whatever the index serves cannot match.
    let project = fixture_with("uvlock-app", "uv.lock", |text| {
        let mut out = String::new();
        let mut in_click = false;
        for line in text.lines() {
            if line.starts_with("name = ") {
                in_click = line == "name = \"click\"";
            }
            if in_click && line.contains("hash = \"sha256:") {
                let start = line.find("sha256:").unwrap() + 7;
                out.push_str(&format!(
                    "{}{}{}\n",
                    &line[..start],
                    "0".repeat(64),
                    &line[start + 64..]
                ));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    });
    let out = project.path().join("out");
    let output = build(project.path(), &out, &["--to", "wheel,zipapp"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.to_lowercase().contains("hash"), "{text}");
    assert!(text.contains("does not match the lock's hash"), "{text}");
    assert!(
        !listing(&out).iter().any(|f| f.ends_with(".pyz")),
        "no .pyz: {:?}",
        listing(&out)
    );
}

/// The SHA-256 digests uv.lock gives for `name`'s files.
fn uv_lock_hashes(name: &str) -> Vec<String> {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(fixture("uvlock-app").join("uv.lock")).unwrap())
            .unwrap();
    let package = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap();
    package
        .get("wheels")
        .and_then(|w| w.as_array())
        .into_iter()
        .flatten()
        .chain(package.get("sdist"))
        .map(|f| {
            f["hash"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect()
}

#[test]
fn hashed_requirements_are_a_lock_whose_files_the_index_names() {
    // The same pin as uv.lock's, as a hand-written hashed requirements file.
    let project = fixture_with("uvlock-app", "pyproject.toml", |t| {
        t.replace("A fixture", "Hashed requirements: a fixture")
    });
    std::fs::remove_file(project.path().join("uv.lock")).unwrap();
    let hashes: String = uv_lock_hashes("click")
        .iter()
        .map(|h| format!(" \\\n    --hash=sha256:{h}"))
        .collect();
    std::fs::write(
        project.path().join("requirements.txt"),
        format!("# pinned by hand\nclick==8.1.7{hashes}\n"),
    )
    .unwrap();
    // Outside the project: setuptools would take a folder in it for a package.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let output = build(project.path(), &out, &["--to", "zipapp"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("as requirements.txt locks them"));
    let published = pylock_packages(&out.join("pylock.uvlockapp.toml"));
    let click: Vec<_> = published.iter().filter(|(n, _, _)| n == "click").collect();
    assert_eq!(click.len(), 1, "{published:?}");
    assert_eq!(click[0].1, "8.1.7");
    assert!(uv_lock_hashes("click").contains(&click[0].2), "{click:?}");

    // A digest the index does not serve for that version: refused before installing.
    std::fs::write(
        project.path().join("requirements.txt"),
        format!("click==8.1.7 --hash=sha256:{}\n", "0".repeat(64)),
    )
    .unwrap();
    let output = build(project.path(), &out, &["--to", "zipapp", "--no-smoke"]);
    fails_with(
        &output,
        1,
        &["the index serves no file of click 8.1.7 whose SHA-256 the project's lock gives"],
    );
}

#[test]
fn a_lock_that_leads_outside_the_project_is_refused() {
    let project = fixture_with("uvlock-app", "pyproject.toml", |t| {
        t.replace("A fixture", "A symlinked lock: a fixture")
    });
    let elsewhere = tempfile::tempdir().unwrap();
    let lock = project.path().join("uv.lock");
    std::fs::rename(&lock, elsewhere.path().join("uv.lock")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("uv.lock"), &lock).unwrap();
    let out = project.path().join("out");
    let output = build(project.path(), &out, &["--to", "zipapp"]);
    fails_with(
        &output,
        2,
        &["leads outside the project folder", "--lock FILE"],
    );
    assert!(!out.exists());
    // Named on the command line, the same file is the user's choice.
    let output = build(
        project.path(),
        &out,
        &[
            "--to",
            "zipapp",
            "--no-smoke",
            "--lock",
            elsewhere.path().join("uv.lock").to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}
