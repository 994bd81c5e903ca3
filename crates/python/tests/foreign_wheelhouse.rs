//! Wheelhouses for linux/arm64 made on this machine from PyPI, through uv: the host's pins
//! with arm64 wheels, or a clear refusal naming the pin that has none. Skipped (with a
//! message) without uv or python3.11; failed instead under `GRADIENT_REQUIRE_CROSS=1`.

use gradient_core::{InterpreterFacts, Platform};
use gradient_lock::{FileKind, LockedFile, Package, Source};
use gradient_python::wheel_target::WheelTarget;
use gradient_python::wheelhouse::{
    build_wheelhouse, Foreign, ProjectLock, Wheelhouse, WheelhouseError, WheelhouseRequest,
};
use gradient_python::{find_interpreter, Installer, PythonRequest};
use std::path::{Path, PathBuf};
use std::time::Instant;

const BOOKWORM_ARM64: WheelTarget = WheelTarget {
    platform: Platform::LinuxArm64,
    glibc: (2, 36),
};

const CLICK: (&str, &str, &[&str]) = (
    "click",
    "8.1.7",
    &["ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"],
);
const MARKUPSAFE_X86_64: &str = "b91c037585eba9095565a3556f611e3cbfaa42ca1e865f7b8015fe5c7336d5a5";
const MARKUPSAFE_AARCH64: &str = "6ec585f69cec0aa07d945b20805be741395e28ac1627333b1c5b0105962ffced";
const MARKUPSAFE_SDIST: &str = "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b";

#[path = "support/cross.rs"]
mod cross;
use cross::cross_required;

/// What every case needs: CPython 3.11, uv, a cache and a scratch folder.
struct Setup {
    python: InterpreterFacts,
    installer: Installer,
    cache: tempfile::TempDir,
    work: tempfile::TempDir,
    /// A pure wheel standing for the app (its Requires-Dist matter only when resolving).
    app_wheel: PathBuf,
}

async fn setup() -> Option<Setup> {
    let uv = gradient_python::interpreter::which("uv");
    let cache = tempfile::tempdir().unwrap();
    let python = find_interpreter(&PythonRequest::parse("3.11"), cache.path()).await;
    let why = match (&uv, &python) {
        (Some(_), Ok(_)) => None,
        (None, _) => Some("uv is not on PATH".to_string()),
        (_, Err(e)) => Some(format!("no CPython 3.11: {e}")),
    };
    if let Some(why) = why {
        assert!(!cross_required(), "{why} (GRADIENT_REQUIRE_CROSS=1)");
        eprintln!("skipped: {why}");
        return None;
    }
    let work = tempfile::tempdir().unwrap();
    let app_wheel = work.path().join("demoapp-0.1.0-py3-none-any.whl");
    Some(Setup {
        python: python.unwrap(),
        installer: Installer::Uv(uv.unwrap()),
        cache,
        work,
        app_wheel,
    })
}

impl Setup {
    fn request<'a>(
        &'a self,
        work_dir: &'a Path,
        locked: Option<ProjectLock<'a>>,
        requires_dist: &'a [String],
        foreign: Option<Foreign<'a>>,
    ) -> WheelhouseRequest<'a> {
        WheelhouseRequest {
            python: &self.python,
            installer: &self.installer,
            cache_root: self.cache.path(),
            app_wheel: &self.app_wheel,
            app_name: "demoapp",
            app_version: "0.1.0",
            extras: &[],
            groups: &[],
            requires_dist,
            locked,
            previous_lock: None,
            find_links: None,
            work_dir,
            foreign,
        }
    }

    /// The host's wheelhouse, then the arm64 one, from a project lock of `packages`.
    async fn both(
        &self,
        packages: &[Package],
    ) -> (Wheelhouse, Result<Wheelhouse, WheelhouseError>, f64) {
        let lock = |packages| ProjectLock {
            file_name: "requirements.txt",
            sha256: "0",
            packages,
        };
        let host = build_wheelhouse(self.request(
            &self.work.path().join("host"),
            Some(lock(packages)),
            &[],
            None,
        ))
        .await
        .expect("the host's wheelhouse installs");
        let started = Instant::now();
        let foreign = build_wheelhouse(self.request(
            &self.work.path().join("arm64"),
            Some(lock(packages)),
            &[],
            Some(Foreign {
                target: BOOKWORM_ARM64,
                host: &host,
            }),
        ))
        .await;
        (host, foreign, started.elapsed().as_secs_f64())
    }
}

/// A pin of a hashed-requirements lock: files known by digest only.
fn pin(name: &str, version: &str, hashes: &[&str]) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        marker: None,
        source: Source::Index(None),
        files: hashes
            .iter()
            .map(|h| LockedFile {
                kind: FileKind::Sdist,
                name: None,
                url: None,
                size: None,
                sha256: h.to_string(),
            })
            .collect(),
        line: 1,
        dependencies: Vec::new(),
        optional: Vec::new(),
        groups: Vec::new(),
    }
}

fn versions(wheelhouse: &Wheelhouse) -> Vec<(String, String)> {
    let mut v: Vec<_> = wheelhouse
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    v.sort();
    v
}

/// The ELF machine of every shared library under `site`.
fn so_machines(site: &Path) -> Vec<(String, u16)> {
    walkdir::WalkDir::new(site)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".so"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            let elf = goblin::elf::Elf::parse(&bytes).expect("an ELF shared library");
            (e.path().display().to_string(), elf.header.e_machine)
        })
        .collect()
}

#[tokio::test]
async fn a_pure_set_installs_for_arm64_and_is_reported_pure() {
    let Some(s) = setup().await else { return };
    let (name, version, hashes) = CLICK;
    let (host, foreign, seconds) = s.both(&[pin(name, version, hashes)]).await;
    let foreign = foreign.expect("click installs for linux/arm64");
    eprintln!("arm64 wheelhouse of click: {seconds:.2} s");
    assert!(foreign.is_pure() && host.is_pure());
    assert_eq!(versions(&foreign), versions(&host));
    assert_eq!(foreign.target, Some(BOOKWORM_ARM64));
    assert_ne!(foreign.site, host.site, "each platform has its own tree");
    assert!(foreign.site.join("click/__init__.py").is_file());
    // Sealed and found again under its own key.
    let again = build_wheelhouse(s.request(
        &s.work.path().join("arm64-again"),
        Some(ProjectLock {
            file_name: "requirements.txt",
            sha256: "0",
            packages: &[pin(name, version, hashes)],
        }),
        &[],
        Some(Foreign {
            target: BOOKWORM_ARM64,
            host: &host,
        }),
    ))
    .await
    .unwrap();
    assert!(again.site_reused);
    assert_eq!(again.site, foreign.site);
}

#[tokio::test]
async fn compiled_code_installs_as_aarch64_elf_files() {
    let Some(s) = setup().await else { return };
    let locked = [pin(
        "markupsafe",
        "2.1.5",
        &[MARKUPSAFE_X86_64, MARKUPSAFE_AARCH64, MARKUPSAFE_SDIST],
    )];
    let (host, foreign, seconds) = s.both(&locked).await;
    let foreign = foreign.expect("markupsafe has an aarch64 wheel");
    eprintln!("arm64 wheelhouse of markupsafe: {seconds:.2} s");
    assert_eq!(versions(&foreign), versions(&host));
    assert!(!foreign.is_pure());
    let arm = so_machines(&foreign.site);
    assert!(!arm.is_empty(), "markupsafe carries its speedups");
    for (path, machine) in &arm {
        assert_eq!(*machine, goblin::elf::header::EM_AARCH64, "{path}");
    }
    for (path, machine) in so_machines(&host.site) {
        assert_eq!(machine, goblin::elf::header::EM_X86_64, "{path}");
    }
    // The arm64 requirements name the aarch64 wheel's digest alone: no sdist to build.
    assert!(foreign.lock.contains(MARKUPSAFE_AARCH64));
    assert!(!foreign.lock.contains(MARKUPSAFE_X86_64) && !foreign.lock.contains(MARKUPSAFE_SDIST));
}

#[tokio::test]
async fn a_pin_without_an_arm64_wheel_is_refused_by_name() {
    let Some(s) = setup().await else { return };
    // A lock made for x86_64 alone: the aarch64 wheel exists but the lock does not vouch for it.
    let (_, foreign, _) = s
        .both(&[pin(
            "markupsafe",
            "2.1.5",
            &[MARKUPSAFE_X86_64, MARKUPSAFE_SDIST],
        )])
        .await;
    let error = foreign.unwrap_err();
    assert_eq!(
        error.to_string(),
        "markupsafe 2.1.5 has no wheel for linux/arm64 (the lock's digests name none; the index's \
         MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl is not \
         among them): gradient does not cross-compile C extensions"
    );
    assert!(gradient_core::Hint::hint(&error)
        .unwrap()
        .contains("uv lock"));
    // A C extension published as an sdist alone for CPython 3.11 on aarch64. The host
    // wheelhouse is not built (it would compile it): only its pins matter.
    let host = Wheelhouse {
        lock: String::new(),
        pylock: String::new(),
        site: s.work.path().join("nothing"),
        packages: vec![gradient_core::LockedDependency {
            name: "netifaces".into(),
            version: "0.11.0".into(),
            sha256: Vec::new(),
        }],
        lock_reused: false,
        site_reused: false,
        target: None,
    };
    // The host's markupsafe tree is cached; nothing else may be.
    let cached = || {
        std::fs::read_dir(s.cache.path().join("wheelhouses"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = cached();
    let netifaces = [pin(
        "netifaces",
        "0.11.0",
        &["043a79146eb2907edf439899f262b3dfe41717d34124298ed281139a8b93ca32"],
    )];
    let error = build_wheelhouse(s.request(
        &s.work.path().join("netifaces"),
        Some(ProjectLock {
            file_name: "requirements.txt",
            sha256: "0",
            packages: &netifaces,
        }),
        &[],
        Some(Foreign {
            target: BOOKWORM_ARM64,
            host: &host,
        }),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&error, WheelhouseError::NoWheelForPlatform { package, version, platform: Platform::LinuxArm64, .. } if package == "netifaces" && version == "0.11.0"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "netifaces 0.11.0 has no wheel for linux/arm64 (only an sdist): gradient does not cross-compile C extensions"
    );
    assert!(gradient_core::Hint::hint(&error)
        .unwrap()
        .contains("aarch64"));
    assert_eq!(
        cached(),
        before,
        "nothing is installed when a pin has no wheel"
    );
}

#[tokio::test]
async fn an_app_with_its_own_compiled_code_is_refused_for_arm64() {
    let Some(mut s) = setup().await else { return };
    s.app_wheel = s
        .work
        .path()
        .join("demoapp-0.1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    let host = Wheelhouse {
        lock: String::new(),
        pylock: String::new(),
        site: s.work.path().join("nothing"),
        packages: Vec::new(),
        lock_reused: false,
        site_reused: false,
        target: None,
    };
    let error = build_wheelhouse(s.request(
        &s.work.path().join("app"),
        None,
        &[],
        Some(Foreign {
            target: BOOKWORM_ARM64,
            host: &host,
        }),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the app's own wheel `demoapp-0.1.0-cp311-cp311-manylinux_2_17_x86_64.whl` holds compiled code for this machine: gradient does not cross-compile it for linux/arm64"
    );
}

/// Write a pure wheel for the app with these Requires-Dist (Python's zipfile writes it).
fn write_app_wheel(path: &Path, requires: &[String]) {
    let metadata = format!(
        "Metadata-Version: 2.1\nName: demoapp\nVersion: 0.1.0\n{}",
        requires
            .iter()
            .map(|r| format!("Requires-Dist: {r}\n"))
            .collect::<String>()
    );
    let script = r#"
import sys, zipfile
path, metadata = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(path, "w") as z:
    z.writestr("demoapp/__init__.py", "")
    z.writestr("demoapp-0.1.0.dist-info/METADATA", metadata)
    z.writestr("demoapp-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("demoapp-0.1.0.dist-info/RECORD", "")
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(metadata)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_resolution_for_the_host_serves_arm64_at_the_same_versions() {
    let Some(s) = setup().await else { return };
    let requires = vec![
        "markupsafe>=2.1,<2.2".to_string(),
        "click<8.1.8".to_string(),
    ];
    write_app_wheel(&s.app_wheel, &requires);
    let host = build_wheelhouse(s.request(&s.work.path().join("host"), None, &requires, None))
        .await
        .expect("the host resolves and installs");
    // The host's resolution names the host's files: the aarch64 wheel's digest is not in it.
    assert!(host.lock.contains("markupsafe==2.1.5"), "{}", host.lock);
    assert!(host.lock.contains(MARKUPSAFE_X86_64));
    assert!(!host.lock.contains(MARKUPSAFE_AARCH64));
    let started = Instant::now();
    let foreign = build_wheelhouse(s.request(
        &s.work.path().join("arm64"),
        None,
        &requires,
        Some(Foreign {
            target: BOOKWORM_ARM64,
            host: &host,
        }),
    ))
    .await
    .expect("the host's pins install for linux/arm64");
    eprintln!(
        "arm64 wheelhouse of markupsafe + click, resolved: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(versions(&foreign), versions(&host));
    assert!(
        foreign.lock.contains(MARKUPSAFE_AARCH64),
        "{}",
        foreign.lock
    );
    assert!(!foreign.lock.contains(MARKUPSAFE_X86_64));
    for (path, machine) in so_machines(&foreign.site) {
        assert_eq!(machine, goblin::elf::header::EM_AARCH64, "{path}");
    }
}

#[tokio::test]
async fn pip_installs_the_same_pins_for_arm64() {
    let Some(mut s) = setup().await else { return };
    s.installer = Installer::Pip;
    let requires = vec!["markupsafe>=2.1,<2.2".to_string()];
    write_app_wheel(&s.app_wheel, &requires);
    let host = build_wheelhouse(s.request(&s.work.path().join("host"), None, &requires, None))
        .await
        .expect("pip resolves and installs for the host");
    let foreign = build_wheelhouse(s.request(
        &s.work.path().join("arm64"),
        None,
        &requires,
        Some(Foreign {
            target: BOOKWORM_ARM64,
            host: &host,
        }),
    ))
    .await
    .expect("pip installs the host's pins for linux/arm64");
    assert_eq!(versions(&foreign), versions(&host));
    let machines = so_machines(&foreign.site);
    assert!(!machines.is_empty());
    for (path, machine) in machines {
        assert_eq!(machine, goblin::elf::header::EM_AARCH64, "{path}");
    }
}
