//! The OS-package tiers: the deb checked by dpkg-deb and lintian and installed into a clean
//! Debian root (made once with mmdebstrap from Debian's packages and kept between runs), the
//! rpm checked by rpm and rpmlint and installed with `rpm --root`; both run there and removed
//! again.
//! Install tests need root (chroot); CI runs as root and installs the tools (.ci/run).

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every path in the root, but for the package managers' own records and logs.
fn files_in(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .filter(|p| {
            ![
                "var/lib/dpkg",
                "var/lib/rpm",
                "var/log",
                "run",
                "var/cache",
                "tmp",
                "usr/lib/sysimage",
                "etc/ld.so.cache",
                "etc/passwd",
                "etc/group",
                "etc/shadow",
                "etc/gshadow",
                "etc/subuid",
                "etc/subgid",
            ]
            .iter()
            .any(|skip| p.starts_with(skip))
        })
        .collect();
    files.sort();
    files
}

fn field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then_some(value)
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
        .trim()
        .to_string()
}

/// The sample built into `tier` twice, in two output folders, at one source date; each
/// build and its smoke test must pass.
fn build_twice(out: &Path, tier: &str) -> (PathBuf, PathBuf) {
    // The second build makes everything again rather than reusing the first one's.
    let build_at = |dir: &str| {
        let output = run(gradient()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--to", tier])
            .args((dir == "b").then_some("--rebuild"))
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(out.join(dir)));
        assert!(
            output.status.success(),
            "the {tier} builds and its smoke test passes"
        );
        only_file(&out.join(dir), &format!(".{tier}"))
    };
    (build_at("a"), build_at("b"))
}

/// The paths in `root` that were not in `before`.
fn left_behind(root: &Path, before: &[String]) -> Vec<String> {
    files_in(root)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect()
}

#[test]
fn the_deb_is_reproducible_lintian_clean_and_installs_runs_and_purges_in_a_clean_debian_root() {
    if !require("dpkg-deb") || !require("lintian") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let (first, second) = build_twice(out.path(), "deb");
    assert_eq!(
        first.file_name().unwrap(),
        "sampleapp_1.2.3-1_amd64.deb",
        "Debian's file name: NAME_VERSION-REVISION_ARCH"
    );
    assert_eq!(
        sha256_file(&first),
        sha256_file(&second),
        "byte-reproducible"
    );

    let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&first)));
    assert_eq!(field(&info, "Package"), "sampleapp");
    assert_eq!(field(&info, "Version"), "1.2.3-1");
    assert_eq!(field(&info, "Architecture"), "amd64");
    assert_eq!(
        field(&info, "Maintainer"),
        "Gradient Maintainers <maintainers@gradient.invalid>"
    );
    assert_eq!(
        field(&info, "Homepage"),
        "https://gradient.invalid/sampleapp"
    );
    assert!(field(&info, "Depends").starts_with("libc6 (>= 2."));
    assert!(field(&info, "Installed-Size").parse::<u64>().unwrap() > 1000);
    let contents = stdout(&run(Command::new("dpkg-deb").arg("--contents").arg(&first)));
    for path in [
        "usr/bin/sampleapp",
        "usr/lib/sampleapp/bin/python3.11",
        "usr/share/doc/sampleapp/copyright",
        "usr/share/doc/sampleapp/changelog.Debian.gz",
    ] {
        assert!(contents.contains(path), "{path} in the package");
    }
    assert!(
        !contents.contains(".pyc"),
        "Debian packages ship no bytecode"
    );

    let lintian = run(Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&first));
    let report = stdout(&lintian);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:#?}");

    if !can_chroot() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = fresh_root(dir.path());
    let before = files_in(&root);
    std::fs::copy(&first, root.join("tmp/app.deb")).unwrap();
    let installed = chroot(&root, &["dpkg", "-i", "/tmp/app.deb"]);
    assert!(installed.status.success(), "dpkg -i works in a clean root");
    let ran = chroot(&root, &["sampleapp", "greet", "X"]);
    assert!(ran.status.success());
    assert_eq!(stdout(&ran).trim(), "Hello, X!");
    // Compiled on install: the app's modules have bytecode now.
    assert!(root
        .join("usr/lib/sampleapp/lib/python3.11/site-packages/sampleapp/__pycache__")
        .is_dir());
    let purged = chroot(&root, &["dpkg", "--purge", "sampleapp"]);
    assert!(purged.status.success());
    let left = left_behind(&root, &before);
    assert!(left.is_empty(), "purging left files behind: {left:#?}");
}

#[test]
fn the_rpm_is_reproducible_checked_by_rpm_and_installs_runs_and_erases_in_a_clean_root() {
    if !require("rpm") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let (first, second) = build_twice(out.path(), "rpm");
    assert_eq!(first.file_name().unwrap(), "sampleapp-1.2.3-1.x86_64.rpm");
    assert_eq!(
        sha256_file(&first),
        sha256_file(&second),
        "byte-reproducible"
    );

    let info = stdout(&run(Command::new("rpm").arg("-qip").arg(&first)));
    assert_eq!(field(&info, "Name"), "sampleapp");
    assert_eq!(field(&info, "Version"), "1.2.3");
    assert_eq!(field(&info, "Release"), "1");
    assert_eq!(field(&info, "Architecture"), "x86_64");
    assert_eq!(field(&info, "License"), "MIT");
    assert_eq!(
        field(&info, "Summary"),
        "The sample application that gradient builds into every tier"
    );
    let checked = run(Command::new("rpm").arg("-K").arg(&first));
    assert!(checked.status.success() && stdout(&checked).contains("digests"));
    let requires = stdout(&run(Command::new("rpm")
        .args(["-qp", "--requires"])
        .arg(&first)));
    assert!(requires.contains("glibc >= 2."), "{requires}");
    let modes = stdout(&run(Command::new("rpm")
        .args(["-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\\n]"])
        .arg(&first)));
    assert!(
        modes.contains("-rwxr-xr-x /usr/lib/sampleapp/lib/libpython3.11.so.1.0"),
        "shared libraries are executable in an rpm:\n{modes}"
    );

    // rpmlint, with the filters the package ships (and the build puts beside it): no error.
    if require("rpmlint") {
        let (errors, warnings, report) = rpmlint(&first, out.path());
        assert_eq!(errors, 0, "rpmlint errors:\n{report}");
        // Debian's rpmlint lists no valid licence, so it flags every one; nothing else.
        assert!(warnings <= 1, "rpmlint warnings:\n{report}");
    }

    if !can_chroot() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = fresh_root(dir.path());
    let rpm_root = |args: &[&str]| run(Command::new("rpm").arg("--root").arg(&root).args(args));
    assert!(rpm_root(&["--initdb"]).status.success());
    // What an rpm distribution's `filesystem` package provides (Debian has no such folder).
    std::fs::create_dir_all(root.join("usr/share/licenses")).unwrap();
    let before = files_in(&root);
    // --nodeps: the Debian root's glibc is not in an rpm database.
    let installed = rpm_root(&["-i", "--nodeps", first.to_str().unwrap()]);
    assert!(installed.status.success(), "rpm -i works in a clean root");
    let ran = chroot(&root, &["sampleapp", "greet", "X"]);
    assert!(ran.status.success());
    assert_eq!(stdout(&ran).trim(), "Hello, X!");
    let erased = rpm_root(&["-e", "sampleapp"]);
    assert!(erased.status.success());
    let left = left_behind(&root, &before);
    assert!(left.is_empty(), "erasing left files behind: {left:#?}");
}

/// rpmlint on `rpm` as it is published: with the `NAME.rpmlintrc` beside it, which must be
/// the one the package carries (taken out into `dir`). Its errors, warnings and report.
fn rpmlint(rpm: &Path, dir: &Path) -> (u64, u64, String) {
    let name = stdout(&run(Command::new("rpm")
        .args(["-qp", "--qf", "%{NAME}"])
        .arg(rpm)));
    let shipped = format!("./usr/share/doc/{name}/{name}.rpmlintrc");
    let carried = dir.join(format!("{name}.rpmlintrc"));
    let taken = run(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rpm2cpio \"$1\" | cpio --quiet -i --to-stdout '{shipped}' > \"$2\""
        ))
        .args(["sh", rpm.to_str().unwrap(), carried.to_str().unwrap()]));
    assert!(taken.status.success(), "{shipped} in the package");
    let carried = std::fs::read_to_string(&carried).unwrap();
    assert!(carried.contains("addFilter("), "{carried}");
    let beside = rpm.with_file_name(format!("{name}.rpmlintrc"));
    assert_eq!(
        std::fs::read_to_string(&beside).ok().as_deref(),
        Some(carried.as_str()),
        "the package's rpmlintrc beside it"
    );
    // rpmlint finds it there by itself.
    let output = run(Command::new("rpmlint").arg(rpm));
    let report = stdout(&output);
    assert!(report.contains("rpmlintrc:"), "{report}");
    // ` 1 packages and 0 specfiles checked; 0 errors, 1 warnings, 0 badness; ...`
    let count = |what: &str| {
        report
            .lines()
            .find(|l| l.contains("packages and"))
            .and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| w.trim_end_matches(',') == what)?;
                words.get(at.checked_sub(1)?)?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no count of {what} in:\n{report}"))
    };
    (count("errors"), count("warnings"), report)
}

#[test]
fn the_system_layout_runs_on_debians_python3_and_a_service_is_installed_with_its_user() {
    if !require("dpkg-deb") || !can_chroot() {
        return;
    }
    let project = sample_with(
        "\n[tool.gradient.deb]\nlayout = \"system\"\n\n[tool.gradient.service]\ncommand = [\"sampleapp\", \"greet\", \"service\"]\nport = 8080\n",
    );
    let out = project.path().join("dist");
    let output = build(project.path(), &out, &["--to", "deb"]);
    assert!(output.status.success());
    let deb = only_file(&out, ".deb");
    let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    let depends = field(&info, "Depends");
    for wanted in ["python3 (>= 3.11)", "python3 (<< 3.12)", "adduser"] {
        assert!(depends.contains(wanted), "{wanted} in {depends}");
    }
    let contents = stdout(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    assert!(
        !contents.contains("bin/python3.11"),
        "no runtime bundled in the system layout"
    );
    assert!(contents.contains("lib/systemd/system/sampleapp.service"));

    let dir = tempfile::tempdir().unwrap();
    let root = fresh_root(dir.path());
    let before = files_in(&root);
    std::fs::copy(&deb, root.join("tmp/app.deb")).unwrap();
    assert!(chroot(&root, &["dpkg", "-i", "/tmp/app.deb"])
        .status
        .success());
    let ran = chroot(&root, &["sampleapp", "greet", "X"]);
    assert_eq!(
        stdout(&ran).trim(),
        "Hello, X!",
        "run by Debian's own python3"
    );
    assert!(
        chroot(&root, &["getent", "passwd", "sampleapp"])
            .status
            .success(),
        "the service user was made"
    );
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/sampleapp.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/sampleapp greet service"));
    assert!(unit.contains("User=sampleapp") && unit.contains("Environment=PORT=8080"));
    assert!(chroot(&root, &["dpkg", "--purge", "sampleapp"])
        .status
        .success());
    let left = left_behind(&root, &before);
    assert!(left.is_empty(), "purging left files behind: {left:#?}");
}

#[test]
fn names_versions_and_maintainers_that_cannot_be_used_say_what_to_set() {
    // A setting in the wrong syntax: refused when the project is read, with its line.
    for (table, setting, says) in [
        (
            "deb",
            "version = \"v1.0\"",
            "Debian upstream versions start with a digit",
        ),
        (
            "rpm",
            "version = \"1-2\"",
            "RPM versions are letters, digits",
        ),
        (
            "deb",
            "name = \"Sample\"",
            "Debian package names are lower-case",
        ),
        (
            "deb",
            "maintainer = \"Just A Name\"",
            "has no email address",
        ),
        ("deb", "layout = \"flat\"", "`flat` is not a layout"),
    ] {
        let project = sample_with(&format!("\n[tool.gradient.{table}]\n{setting}\n"));
        let line = std::fs::read_to_string(project.path().join("pyproject.toml"))
            .unwrap()
            .lines()
            .count();
        let output = build(
            project.path(),
            &project.path().join("dist"),
            &["--to", table],
        );
        fails_with(
            &output,
            2,
            &[says, &format!("pyproject.toml:{line}:"), "hint:"],
        );
        assert!(!project.path().join("dist").exists(), "nothing written");
    }

    // A project name Debian cannot take: the rule, and what to set.
    let project = sample_with("");
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        text.replace("name = \"sampleapp\"", "name = \"x\""),
    )
    .unwrap();
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "deb"],
    );
    fails_with(
        &output,
        1,
        &[
            "the name `x` cannot be used",
            "at least two characters",
            "name = \"...\" in [tool.gradient.deb]",
        ],
    );
    assert!(listing(&project.path().join("dist"))
        .iter()
        .all(|f| !f.ends_with(".deb")));

    // A service command that is not one of the project's console scripts.
    let project = sample_with("\n[tool.gradient.service]\ncommand = [\"bash\", \"-c\", \"x\"]\n");
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "deb"],
    );
    fails_with(
        &output,
        1,
        &["command starts with `bash`, which is not a console script of the project (sampleapp)"],
    );
    assert!(listing(&project.path().join("dist"))
        .iter()
        .all(|f| !f.ends_with(".deb")));

    // Authors without an email: Debian needs one.
    let project = sample_without_maintainer_email();
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "deb"],
    );
    fails_with(
        &output,
        1,
        &[
            "the maintainer `Gradient Maintainers`, without an email address",
            "maintainer = \"Name <email>\" in [tool.gradient.deb]",
            "DEBFULLNAME and DEBEMAIL",
            "an email to [project] authors or maintainers",
            "deb failed: cannot be built for this project",
        ],
    );
    // Said before building, and listed as a skip with its reason: the table, the manifest.
    assert!(stderr(&output).contains("skipping deb: a Debian package needs a maintainer"));
    assert!(!stderr(&output).contains("deb: wrote"));
    let table = stdout(&output);
    let row = table.lines().find(|l| l.starts_with("deb")).unwrap();
    assert!(
        row.contains("skipped") && row.contains("maintainer"),
        "{table}"
    );
}

#[test]
fn the_system_layout_refuses_wheels_built_for_another_python() {
    let project = sample_with("\n[tool.gradient.deb]\nlayout = \"system\"\npython = \"3.12\"\n");
    let output = build(
        project.path(),
        &project.path().join("dist"),
        &["--to", "deb"],
    );
    fails_with(
        &output,
        1,
        &[
            "runs the distribution's python3 3.12",
            "msgpack",
            "cp311",
            "layout = \"bundled\"",
        ],
    );
    assert!(listing(&project.path().join("dist"))
        .iter()
        .all(|f| !f.ends_with(".deb")));
}

/// `build --to TIER` of the sample with `tool` hidden from PATH: the package is written and
/// published unchecked, with what to install (exit 0); with `GRADIENT_REQUIRE_CHECKERS=1`
/// (as CI sets) the smoke test runs and fails on the missing tool (exit 1).
fn without_checker(tool: &str, tier: &str, suffix: &str, install: &str) {
    // A PATH with everything of this one but `tool`.
    let bin = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for dir in std::env::split_paths(&path) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let link = bin.path().join(&name);
            if name != tool && !link.exists() {
                let _ = std::os::unix::fs::symlink(entry.path(), link);
            }
        }
    }
    let build = |require: bool| {
        let out = tempfile::tempdir().unwrap();
        let mut command = gradient();
        command.env("PATH", bin.path());
        if require {
            command.env("GRADIENT_REQUIRE_CHECKERS", "1");
        } else {
            command.env_remove("GRADIENT_REQUIRE_CHECKERS");
        }
        // Not the cached smoke result of another test's identical build.
        let output = run(command
            .args(["build", "--rebuild", "--to", tier])
            .arg(fixture("sampleapp"))
            .arg("--out")
            .arg(out.path()));
        assert!(
            only_file(out.path(), suffix).exists(),
            "the package itself is written"
        );
        let manifest = read_json(&out.path().join("gradient-manifest.json"));
        (output, manifest)
    };
    let (output, manifest) = build(false);
    assert!(output.status.success(), "{}", stderr(&output));
    for part in [
        "is published unchecked",
        &format!("`{tool}` is not installed"),
        install,
    ] {
        assert!(
            stderr(&output).contains(part),
            "`{part}` in {}",
            stderr(&output)
        );
    }
    assert!(manifest["artifacts"][0]["smoke"].is_null());
    let (output, manifest) = build(true);
    fails_with(
        &output,
        1,
        &[&format!("`{tool}` is not installed"), install],
    );
    assert_eq!(manifest["artifacts"][0]["smoke"]["passed"], false);
}

#[test]
fn without_dpkg_deb_the_deb_is_published_unchecked_and_says_what_to_install() {
    without_checker("dpkg-deb", "deb", ".deb", "apt-get install dpkg");
}

#[test]
fn without_rpm_the_rpm_is_published_unchecked_and_says_what_to_install() {
    // The README's first command on a fresh machine, which has no rpm.
    without_checker("rpm", "rpm", ".rpm", "apt-get install rpm");
}

#[test]
fn a_deb_maintainer_comes_from_the_setting_then_debemail_then_the_first_author_with_an_email() {
    if !require("dpkg-deb") {
        return;
    }
    let maintainer = |project: &Path, env: &[(&str, &str)]| {
        let out = project.join("dist");
        let output = run(gradient()
            .envs(env.iter().copied())
            .args(["build", "--to", "deb"])
            .arg(project)
            .arg("--out")
            .arg(&out));
        assert!(output.status.success(), "{}", stderr(&output));
        let deb = only_file(&out, ".deb");
        let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
        std::fs::remove_dir_all(&out).unwrap();
        field(&info, "Maintainer").trim().to_string()
    };

    // The first author has no email, the second has: the second maintains the package.
    let project = sample_without_maintainer_email();
    let pyproject = project.path().join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap().replace(
        "authors = [{ name = \"Gradient Maintainers\" }]",
        "authors = [{ name = \"Gradient Maintainers\" }, { name = \"Second Author\", email = \"second@gradient.invalid\" }]",
    );
    std::fs::write(&pyproject, text).unwrap();
    assert_eq!(
        maintainer(project.path(), &[]),
        "Second Author <second@gradient.invalid>"
    );

    // No author with an email: DEBFULLNAME and DEBEMAIL, as dch takes them; DEBEMAIL may be
    // `Name <email>` itself.
    let project = sample_without_maintainer_email();
    assert_eq!(
        maintainer(
            project.path(),
            &[
                ("DEBFULLNAME", "Env Person"),
                ("DEBEMAIL", "env@gradient.invalid")
            ]
        ),
        "Env Person <env@gradient.invalid>"
    );
    assert_eq!(
        maintainer(
            project.path(),
            &[("DEBEMAIL", "Mail Person <mail@gradient.invalid>")]
        ),
        "Mail Person <mail@gradient.invalid>"
    );

    // The environment comes before the project's authors, the setting before both.
    let project =
        sample_with("\n[tool.gradient.deb]\nmaintainer = \"Set Person <set@gradient.invalid>\"\n");
    let env = [
        ("DEBFULLNAME", "Env Person"),
        ("DEBEMAIL", "env@gradient.invalid"),
    ];
    assert_eq!(
        maintainer(project.path(), &env),
        "Set Person <set@gradient.invalid>"
    );
    let project = sample_with("");
    assert_eq!(
        maintainer(project.path(), &env),
        "Env Person <env@gradient.invalid>"
    );
}

/// The machine of every ELF file under `dir` that is not `wanted` (ELF's `e_machine`).
fn other_machines(dir: &Path, wanted: u16) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut other = Vec::new();
    for entry in walkdir::WalkDir::new(dir).into_iter().map(|e| e.unwrap()) {
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        if bytes.len() < 20 || !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        count += 1;
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        if machine != wanted {
            other.push(format!("{} ({machine})", entry.path().display()));
        }
    }
    (count, other)
}

/// The sample's deb and rpm for linux/arm64, built on this host from Debian's arm64 CPython
/// and the arm64 wheelhouse: named and labelled arm64/aarch64, every ELF file in them
/// aarch64, depending on the arm64 root's glibc, and smoke-tested under qemu-user (the
/// manifest's record for each says its platform and that its smoke test passed). Skipped
/// without qemu's aarch64 handler, failed instead under GRADIENT_REQUIRE_CROSS=1.
#[test]
fn the_deb_and_the_rpm_are_built_for_arm64_and_run_under_qemu() {
    if !require("dpkg-deb") || !require("rpm") {
        return;
    }
    if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        assert!(
            std::env::var_os("GRADIENT_REQUIRE_CROSS").is_none_or(|v| v != "1"),
            "qemu-user's aarch64 handler is not registered (GRADIENT_REQUIRE_CROSS=1)"
        );
        eprintln!("skipping: qemu-user's aarch64 handler is not registered");
        return;
    }
    const EM_AARCH64: u16 = 183;
    let out = tempfile::tempdir().unwrap();
    let output = run(gradient()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--to", "deb,rpm", "--platform", "linux/arm64"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out.path()));
    assert!(output.status.success(), "{}", stderr(&output));

    let deb = out.path().join("sampleapp_1.2.3-1_arm64.deb");
    let rpm = out.path().join("sampleapp-1.2.3-1.aarch64.rpm");
    assert!(deb.is_file() && rpm.is_file(), "{:?}", listing(out.path()));

    let info = stdout(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert_eq!(field(&info, "Architecture"), "arm64");
    let depends = field(&info, "Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    let arch = stdout(&run(Command::new("rpm")
        .args(["-qp", "--qf", "%{ARCH}"])
        .arg(&rpm)));
    assert_eq!(arch.trim(), "aarch64");
    let requires = stdout(&run(Command::new("rpm")
        .args(["-qp", "--requires"])
        .arg(&rpm)));
    assert!(requires.contains("glibc >= 2."), "{requires}");
    assert!(
        !requires.contains("x86-64"),
        "nothing of the host's machine: {requires}"
    );

    // Every ELF file in each package is aarch64: the bundle, the extension modules.
    let unpacked = tempfile::tempdir().unwrap();
    let deb_root = unpacked.path().join("deb");
    assert!(
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&deb_root))
            .status
            .success()
    );
    let (count, other) = other_machines(&deb_root, EM_AARCH64);
    assert!(
        count > 5,
        "the deb holds the arm64 bundle ({count} ELF files)"
    );
    assert!(other.is_empty(), "not aarch64: {other:#?}");
    let rpm_root = unpacked.path().join("rpm");
    std::fs::create_dir_all(&rpm_root).unwrap();
    let cpio = run(Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$1\" | cpio -idm --quiet")
        .arg("sh")
        .arg(&rpm)
        .current_dir(&rpm_root));
    assert!(cpio.status.success(), "{}", stderr(&cpio));
    let (count, other) = other_machines(&rpm_root, EM_AARCH64);
    assert!(
        count > 5,
        "the rpm holds the arm64 bundle ({count} ELF files)"
    );
    assert!(other.is_empty(), "not aarch64: {other:#?}");

    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    let records = manifest["artifacts"].as_array().unwrap();
    for file in [
        "sampleapp_1.2.3-1_arm64.deb",
        "sampleapp-1.2.3-1.aarch64.rpm",
    ] {
        let record = records
            .iter()
            .find(|r| r["file"] == file)
            .unwrap_or_else(|| panic!("{file} in the manifest: {records:#?}"));
        assert_eq!(record["platform"], "linux/arm64", "{record}");
        assert_eq!(record["smoke"]["passed"], true, "{record}");
        let checks = record["smoke"]["checks"].to_string();
        assert!(checks.contains("under qemu-user"), "{checks}");
        assert!(checks.contains("all aarch64"), "{checks}");
    }
}
