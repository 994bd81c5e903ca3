//! The `deb` and `rpm` tiers: one spec, two writers. Smoke tests check the package with the
//! format's own tools, then lay it down in a root that holds only the host's C library
//! (and, for the `system` layout, a CPython standing in for the distribution's python3) and
//! run its console scripts there, in a chroot without network. Another platform's package
//! (one build per platform) is laid down beside that platform's C library instead, and its
//! scripts run under qemu-user, which binfmt_misc starts for them in the chroot; every ELF
//! file laid down must be built for the package's machine.

use crate::spec::{
    name_and_version, package_config, package_maintainer, package_name_and_version, package_spec,
};
use crate::{deb, io, rpm, OsPkgError};
use async_trait::async_trait;
use gradient_archive::{Entry, EntryKind};
use gradient_core::{
    AppIdentity, Artifact, Backend, BackendError, BuildContext, Host, Input, InterpreterFacts,
    Layout, PackageFormat, PlannedFile, Platform, ProbeOutput, Project, PythonNeed, RuntimeFiles,
    SmokeCheck, SmokeContext, SmokeReport, Startup, TargetNeeds, Tier, Unavailable,
};
use gradient_python::smoke::{
    measure_startup, run_check, run_probe, smoke_commands, startup_command, Expect, SmokeCommand,
};
use gradient_sandbox::Rootfs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::process::Command;

/// The `deb` or the `rpm` tier: one backend, the format chosen by the value.
pub struct PackageTier(PackageFormat);

impl PackageTier {
    /// A Debian package.
    pub const DEB: PackageTier = PackageTier(PackageFormat::Deb);
    /// An RPM package.
    pub const RPM: PackageTier = PackageTier(PackageFormat::Rpm);
}

const INPUTS: &[Input] = &[Input::Runtime, Input::Wheelhouse, Input::Wheel];

fn tier_of(format: PackageFormat) -> Tier {
    match format {
        PackageFormat::Deb => Tier::Deb,
        PackageFormat::Rpm => Tier::Rpm,
    }
}

/// What a package asks of its target: the package manager, and glibc (bundled) or the
/// distribution's python3 (system).
fn needs(
    format: PackageFormat,
    project: &Project,
    python: &InterpreterFacts,
    glibc: Option<String>,
) -> TargetNeeds {
    let config = package_config(project, format);
    let manager = match format {
        PackageFormat::Deb => "dpkg",
        PackageFormat::Rpm => "rpm",
    };
    let mut needs = TargetNeeds {
        package_manager: Some(manager.into()),
        platform: Some(python.platform_tag.clone()),
        glibc,
        carries: gradient_core::Carries::DEPENDENCIES_AND_CPYTHON,
        ..TargetNeeds::default()
    };
    if config.layout() == Layout::System {
        // The distribution's python3 runs the app: the package carries no CPython.
        needs.carries.cpython = false;
        let (major, minor) = config
            .python()
            .unwrap_or((python.version.0, python.version.1));
        needs.python = Some(PythonNeed {
            version: Some(format!("{major}.{minor} as python3")),
            implementation: Some("cpython".into()),
        });
    }
    needs
}

fn preflight(host: &Host, what: &str) -> Result<(), Unavailable> {
    host.require_interpreter()?;
    let python = host.interpreter.as_ref().expect("checked above");
    if !python.platform_tag.starts_with("linux") {
        return Err(Unavailable {
            reason: format!(
                "{what} packages are for Linux, and this interpreter is for {}",
                python.platform_tag
            ),
            hint: None,
        });
    }
    // The runtime bundle is built for every package, whatever its layout.
    gradient_python::runtime::require_bundleable(python)
}

async fn build(cx: &BuildContext, format: PackageFormat) -> Result<Vec<Artifact>, BackendError> {
    let spec = package_spec(cx, format).await?;
    let mtime = cx.source_date.seconds;
    let path = match format {
        PackageFormat::Deb => cx.work_dir.join(deb::file_name(&spec)),
        PackageFormat::Rpm => cx.work_dir.join(rpm::file_name(&spec)),
    };
    tokio::task::block_in_place(|| match format {
        PackageFormat::Deb => deb::write_deb(&spec, mtime, &path, &cx.cache_dir),
        PackageFormat::Rpm => rpm::write_rpm(&spec, mtime, &path),
    })?;
    let glibc = spec
        .depends
        .iter()
        .find(|d| d.name == "libc6" || d.name == "glibc")
        .and_then(|d| d.constraint.as_ref().map(|(_, v)| v.clone()));
    let mut needs = needs(format, &cx.project, &cx.python, glibc);
    if let Some(target) = &cx.inputs.target {
        // The build interpreter's tag names the host: the package is the target's.
        needs.platform = Some(format!("linux_{}", target.platform.machine()));
    }
    needs.libraries = spec.system_libraries.clone();
    if !spec.native {
        needs.platform = None;
    }
    Ok(vec![Artifact {
        tier: tier_of(format),
        path,
        needs,
        // A package with no compiled code (`_all.deb`, `.noarch.rpm`) serves every platform.
        platform: cx.inputs.platform().filter(|_| spec.native),
    }])
}

#[async_trait]
impl Backend for PackageTier {
    fn tier(&self) -> Tier {
        tier_of(self.0)
    }

    fn target_needs(&self, project: &Project, python: &InterpreterFacts) -> TargetNeeds {
        needs(self.0, project, python, None)
    }

    fn inputs(&self) -> &'static [Input] {
        INPUTS
    }

    /// One package per platform (`_arm64.deb`, `.aarch64.rpm`), each from that platform's
    /// runtime and wheelhouse.
    fn platform_scope(&self) -> gradient_core::PlatformScope {
        gradient_core::PlatformScope::Each
    }

    fn artifact_files(
        &self,
        project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        // One build per platform: the one this build is for, else the host's.
        let platform = platforms.first().copied().or_else(Platform::host);
        let format = self.0;
        let config = package_config(project, format);
        // A name or version the format cannot take: the build refuses it, with the reason.
        // A version only the build backend knows yet (and no `version` setting) is named
        // by its placeholder.
        let version = app.version.as_deref().unwrap_or("0");
        let Ok((name, version)) = package_name_and_version(project, &app.name, version, format)
        else {
            return Vec::new();
        };
        let version_settled = config.version.is_some() || app.version_settled();
        let upstream = match (&app.version, &config.version) {
            (None, None) => app.version_in_name().to_string(),
            _ => version.upstream,
        };
        // A bundled runtime is compiled code; with the system's Python, the package is
        // architecture-dependent only when some wheel carries compiled code.
        let bundled = config.layout() == Layout::Bundled;
        let revision = config.revision();
        let name = match format {
            PackageFormat::Deb => {
                deb::package_file_name(&name, &upstream, &revision, bundled, platform)
            }
            PackageFormat::Rpm => {
                rpm::package_file_name(&name, &upstream, &revision, bundled, platform)
            }
        };
        vec![PlannedFile {
            name,
            settled: version_settled && bundled,
        }]
    }

    fn fingerprint(&self, _project: &Project) -> Option<String> {
        // Without binutils' strip, compiled code keeps its symbols. A deb's maintainer may
        // come from DEBFULLNAME/DEBEMAIL (this text is only digested, never kept).
        let maintainer = match self.0 {
            PackageFormat::Deb => crate::spec::environment_maintainer().ok().flatten(),
            PackageFormat::Rpm => None,
        };
        Some(format!(
            "strip: {}, for aarch64: {:?}\nmaintainer from the environment: {maintainer:?}",
            crate::strip::on_path("strip"),
            crate::strip::strip_tool(crate::strip::EM_AARCH64)
        ))
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        let what = match self.0 {
            PackageFormat::Deb => "Debian",
            PackageFormat::Rpm => "RPM",
        };
        preflight(host, what)
    }

    /// A name or version the format cannot express, or a Debian package without a
    /// maintainer's email: said before building, with the setting that fixes it.
    fn check(&self, cx: &BuildContext) -> Result<(), Unavailable> {
        let refuse = |error: OsPkgError| Unavailable::from_error(&error);
        let Some(app) = &cx.inputs.app else {
            return Ok(());
        };
        app.scripts().map_err(|e| refuse(e.into()))?;
        name_and_version(&cx.project, app, self.0).map_err(refuse)?;
        package_maintainer(&cx.project, app, self.0).map_err(refuse)?;
        Ok(())
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        build(cx, self.0).await
    }

    /// The bundled layout ships a stripped copy of the bundle; the `system` layout uses the
    /// distribution's python3.
    async fn shipped_runtime(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        cache: &Path,
    ) -> Option<(RuntimeFiles, bool)> {
        if package_config(project, self.0).layout() == Layout::System {
            return None;
        }
        match crate::strip::stripped_runtime_to_list(runtime, cache).await {
            Ok(stripped) => Some((
                RuntimeFiles {
                    dir: stripped,
                    ..runtime.clone()
                },
                true,
            )),
            Err(error) => {
                tracing::warn!("the {} SBOM lists no runtime: {error}", self.tier());
                None
            }
        }
    }

    /// The rpm's rpmlintrc as `NAME.rpmlintrc`, where a plain `rpmlint PACKAGE.rpm` finds it.
    fn beside(&self, artifact: &Path) -> Vec<(String, Vec<u8>)> {
        match self.0 {
            PackageFormat::Deb => Vec::new(),
            PackageFormat::Rpm => crate::rpmlint::shipped(artifact).into_iter().collect(),
        }
    }

    fn beside_names(&self, file: &str) -> Vec<String> {
        match self.0 {
            PackageFormat::Deb => Vec::new(),
            PackageFormat::Rpm => crate::rpmlint::file_name(file).into_iter().collect(),
        }
    }

    fn smoke_needs(&self) -> Result<(), Unavailable> {
        let (tool, hint) = match self.0 {
            PackageFormat::Deb => ("dpkg-deb", "apt-get install dpkg"),
            PackageFormat::Rpm => ("rpm", "apt-get install rpm, or dnf install rpm"),
        };
        if crate::strip::on_path(tool) {
            Ok(())
        } else {
            Err(Unavailable {
                reason: format!("`{tool}` is not installed, so the package cannot be checked"),
                hint: Some(hint.to_string()),
            })
        }
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let file = &artifact.path;
        let root = cx.scratch.join("root");
        let foreign = cx.inputs.target.as_ref().map(|t| t.platform);
        let (mut checks, lay_down, shown) = match self.0 {
            PackageFormat::Deb => {
                let hint = "apt-get install dpkg";
                let mut checks = vec![
                    tool_check("dpkg-deb", &["--info"], file, hint, Some("Package:")).await,
                    tool_check("dpkg-deb", &["--contents"], file, hint, Some("usr/bin/")).await,
                ];
                if let Some(platform) = foreign {
                    let arch = match artifact.platform {
                        Some(_) => platform.deb_arch(),
                        None => "all",
                    };
                    let field = format!("Architecture: {arch}");
                    checks
                        .push(tool_check("dpkg-deb", &["--info"], file, hint, Some(&field)).await);
                }
                let mut unpack = Command::new("dpkg-deb");
                unpack.arg("-x").arg(file).arg(&root);
                (checks, unpack, "dpkg-deb -x")
            }
            PackageFormat::Rpm => {
                let hint = "apt-get install rpm, or dnf install rpm";
                let mut checks = vec![
                    tool_check("rpm", &["-qip"], file, hint, Some("Name")).await,
                    tool_check("rpm", &["-K"], file, hint, Some("digests")).await,
                ];
                if let Some(platform) = foreign {
                    let args = ["-qp", "--qf", "%{ARCH}\n"];
                    let arch = match artifact.platform {
                        Some(_) => platform.rpm_arch(),
                        None => "noarch",
                    };
                    checks.push(tool_check("rpm", &args, file, hint, Some(arch)).await);
                }
                // rpm itself lays the files down (scripts left out: the root has no shell).
                let mut install = Command::new("unshare");
                if !gradient_python::is_root() {
                    install.args(["--user", "--map-root-user"]);
                }
                install.args(["rpm", "--root"]).arg(&root).args([
                    "--nodeps",
                    "--noscripts",
                    "--nosignature",
                ]);
                // The host's rpm refuses another machine's package unless told.
                let shown = match foreign {
                    Some(_) => {
                        install.arg("--ignorearch");
                        "rpm --root ROOT --nodeps --noscripts --ignorearch -i"
                    }
                    None => "rpm --root ROOT --nodeps --noscripts -i",
                };
                install.arg("-i").arg(file);
                (checks, install, shown)
            }
        };
        checks.extend(
            run_installed(
                cx,
                self.0,
                &root,
                (lay_down, shown),
                &artifact.needs.libraries,
            )
            .await?,
        );
        Ok(SmokeReport { checks })
    }

    /// The Python the installed console scripts name in their `#!` line, in the root the
    /// smoke test laid the package down in.
    async fn probe(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        let app_scripts = cx.inputs.app()?.scripts()?;
        let rootfs = installed_root(&cx.scratch.join("root"));
        let scripts = app_scripts.scripts.keys();
        let Some(start) = gradient_wheel::installed_script_start(&rootfs.root, "/usr/bin", scripts)
        else {
            return Ok(None);
        };
        let (args, shown) = start.probe_arguments(code);
        let command = rootfs.command(&start.interpreter[0], &args);
        let shown = format!("{shown} (installed, chroot)");
        Ok(Some(run_probe(shown, command).await))
    }

    /// The installed command in the root the smoke test laid the package down in, twice.
    /// The rpm ships its byte-code compiled; the deb compiles it in `postinst`, which that
    /// root (laid down by `dpkg-deb -x`, as an unprivileged user) never ran, so both of its
    /// runs compile in memory: its figures are an upper bound.
    async fn startup(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        let app_scripts = cx.inputs.app()?.scripts()?;
        let Some(SmokeCommand { argv, expect }) = startup_command(
            &cx.project,
            cx.reference.as_deref(),
            app_scripts.scripts.keys(),
        ) else {
            return Ok(None);
        };
        let rootfs = installed_root(&cx.scratch.join("root"));
        let program = format!("/usr/bin/{}", argv[0]);
        let make = || rootfs.command(&program, &argv[1..]);
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

/// `TOOL ARGS FILE` must exit 0 and print `expect`; a missing tool fails with what to install.
async fn tool_check(
    tool: &str,
    args: &[&str],
    file: &Path,
    install: &str,
    expect: Option<&str>,
) -> SmokeCheck {
    let shown = format!(
        "{tool} {} {}",
        args.join(" "),
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    if !crate::strip::on_path(tool) {
        return SmokeCheck {
            command: shown,
            passed: false,
            exit_code: None,
            seconds: 0.0,
            detail: format!(
                "`{tool}` is not installed, so the package cannot be checked\n  hint: {install}"
            ),
        };
    }
    let mut command = Command::new(tool);
    command.args(args).arg(file);
    run_check(shown, command, &Expect::output(expect)).await
}

/// Prepare a root with the host's C library and the system libraries the package depends
/// on (`libraries`, as its target needs say), lay the package down with `unpack`, and run
/// each smoke command's console script from `/usr/bin` there.
async fn run_installed(
    cx: &SmokeContext,
    format: PackageFormat,
    root: &Path,
    (unpack, unpack_shown): (Command, &str),
    libraries: &[String],
) -> Result<Vec<SmokeCheck>, OsPkgError> {
    let glibc = gradient_python::runtime::glibc_files();
    let mut base = match &cx.inputs.target {
        None => {
            let mut base = gradient_sandbox::scratch_base(&glibc)?;
            let depended_on = gradient_python::runtime::host_libraries(libraries);
            base.extend(gradient_sandbox::system_libraries(&glibc, &depended_on)?);
            base
        }
        Some(target) => foreign_base(target, &glibc, libraries)?,
    };
    let layout = package_config(&cx.project, format).layout();
    if layout == Layout::System {
        // The distribution's python3, played by the build's runtime bundle at /usr.
        if let Some(runtime) = &cx.inputs.runtime {
            base.extend(gradient_archive::tree_entries(&runtime.dir, "usr")?);
        }
    }
    tokio::task::block_in_place(|| write_entries(root, &base))?;
    let unpacked = run_check(
        format!("{unpack_shown} into a root with only glibc"),
        unpack,
        &Expect::default(),
    )
    .await;
    if !unpacked.passed {
        return Ok(vec![unpacked]);
    }
    let emulated = match &cx.inputs.target {
        Some(target) if !target.platform.is_host() => {
            format!(", {} under qemu-user", target.platform)
        }
        _ => String::new(),
    };
    let mut checks = vec![unpacked];
    if let Some(platform) = cx.inputs.platform() {
        checks.push(tokio::task::block_in_place(|| {
            machine_check(root, platform)
        }));
    }
    let proc = root.join("proc");
    std::fs::create_dir_all(&proc).map_err(io("create", &proc))?;
    let rootfs = installed_root(root);
    let app_scripts = cx.inputs.app()?.scripts()?;
    for SmokeCommand { argv, expect } in smoke_commands(
        &cx.project,
        cx.reference.as_deref(),
        app_scripts.scripts.keys(),
    ) {
        let program = format!("/usr/bin/{}", argv[0]);
        let (command, network) = rootfs.smoke_command(&program, &argv[1..], expect.http.is_some());
        checks.push(
            run_check(
                format!(
                    "{} (installed, chroot with only glibc, {network}{emulated})",
                    argv.join(" ")
                ),
                command,
                &expect,
            )
            .await,
        );
    }
    Ok(checks)
}

/// The root another platform's package is laid down in: the scratch base's users, groups
/// and folders without the host's C library, the target's C library and loader
/// (`TargetSystem::loader_prefix`) in their place, and the libraries beyond glibc the
/// package depends on, from the target's root. Its programs run under qemu-user, which
/// binfmt_misc starts for them even inside the chroot.
fn foreign_base(
    target: &gradient_core::TargetSystem,
    host_glibc: &[(String, std::path::PathBuf)],
    libraries: &[String],
) -> Result<Vec<Entry>, OsPkgError> {
    let is_loader_link = |entry: &Entry| {
        matches!(entry.kind, EntryKind::Symlink(_))
            && entry
                .path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("ld-linux"))
    };
    let mut base: Vec<Entry> = gradient_sandbox::scratch_base(host_glibc)?
        .into_iter()
        .filter(|entry| match &entry.kind {
            EntryKind::File(data) => !data.starts_with(b"\x7fELF"),
            _ => !is_loader_link(entry),
        })
        .collect();
    // The prefix holds `lib/LOADER` and `lib/TRIPLET/libc.so.6`…; `lib` is `usr/lib` here.
    base.extend(
        gradient_archive::tree_entries(&target.loader_prefix, "usr")?
            .into_iter()
            .filter(|entry| entry.path != "usr" && entry.path != "usr/.complete"),
    );
    let machine = target.platform.machine();
    let triplet = gradient_python::target_python::DEBIAN_ARCHES
        .iter()
        .find(|arch| arch.machine == machine)
        .map(|arch| arch.triplet);
    let system = gradient_python::runtime::Sysroot::of_machine(&target.root, machine);
    if let (Some(triplet), Some(system)) = (triplet, system) {
        for (soname, file) in gradient_python::runtime::libraries_in(&system, libraries) {
            let data = std::fs::read(&file).map_err(io("read", &file))?;
            base.push(Entry {
                path: format!("usr/lib/{triplet}/{soname}"),
                kind: EntryKind::File(data),
                mode: 0o755,
            });
        }
    }
    Ok(base)
}

/// Every ELF file laid down in `root` (the package's and the C library's) must be built for
/// `platform`: a host object in an arm64 package would only fail where it is installed.
fn machine_check(root: &Path, platform: Platform) -> SmokeCheck {
    let started = std::time::Instant::now();
    let wanted = match platform {
        Platform::LinuxAmd64 => crate::strip::EM_X86_64,
        Platform::LinuxArm64 => crate::strip::EM_AARCH64,
    };
    let mut count = 0;
    let mut wrong = Vec::new();
    let objects = crate::strip::elf_files(root);
    let detail = match objects {
        Err(error) => Err(error.to_string()),
        Ok(objects) => {
            for object in &objects {
                count += 1;
                let machine = crate::strip::elf_machine(object);
                if machine != Some(wanted) {
                    let shown = object.strip_prefix(root).unwrap_or(object).display();
                    wrong.push(format!("/{shown} (e_machine {machine:?})"));
                }
            }
            if wrong.is_empty() {
                Ok(format!("{count} ELF files, all {}", platform.machine()))
            } else {
                Err(format!(
                    "{} of {count} ELF files are not built for {}: {}",
                    wrong.len(),
                    platform.machine(),
                    wrong.join(", ")
                ))
            }
        }
    };
    SmokeCheck {
        command: format!("every ELF file laid down is {}", platform.machine()),
        passed: detail.is_ok(),
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        detail: detail.unwrap_or_else(|e| e),
    }
}

/// How to run the installed package's commands in `root`: as a user, with no network.
fn installed_root(root: &Path) -> Rootfs {
    Rootfs {
        root: root.to_path_buf(),
        env: vec![
            ("PATH".into(), "/usr/bin:/usr/sbin:/bin:/sbin".into()),
            ("LANG".into(), "C.UTF-8".into()),
            (
                "HOME".into(),
                format!("/home/{}", gradient_core::DEFAULT_USER),
            ),
        ],
        user: format!("{0}:{0}", gradient_sandbox::APP_UID),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
    }
}

/// Write archive entries as files under `root`.
fn write_entries(root: &Path, entries: &[Entry]) -> Result<(), OsPkgError> {
    for entry in entries {
        let path = root.join(&entry.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        match &entry.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&path).map_err(io("create", &path))?;
                let mode = gradient_archive::normal_mode(entry.mode, true);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(io("chmod", &path))?;
                let uid = gradient_sandbox::APP_UID as u32;
                if entry.path == format!("home/{}", gradient_core::DEFAULT_USER)
                    && gradient_python::is_root()
                {
                    std::os::unix::fs::chown(&path, Some(uid), Some(uid))
                        .map_err(io("chown", &path))?;
                }
            }
            EntryKind::Symlink(target) => {
                if path.symlink_metadata().is_err() {
                    std::os::unix::fs::symlink(target, &path).map_err(io("link", &path))?
                }
            }
            EntryKind::File(data) => {
                std::fs::write(&path, data).map_err(io("write", &path))?;
                let mode = gradient_archive::normal_mode(entry.mode, false);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(io("chmod", &path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root an arm64 package's smoke test runs in, made for real from Debian's arm64
    /// root: an aarch64 program (built by the cross compiler) runs in the chroot under
    /// qemu-user, finds the target's loader and C library, and loads a library the package
    /// depends on from where the base put it. Skipped without apt-get, qemu's binfmt_misc
    /// handler or the cross compiler (failed instead under GRADIENT_REQUIRE_CROSS=1).
    /// `GRADIENT_TEST_DEBIAN_CACHE` may name a cache that keeps the Debian root.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_arm64_program_runs_in_the_foreign_base_under_qemu() {
        let skip = |why: &str| {
            let required = std::env::var_os("GRADIENT_REQUIRE_CROSS").is_some_and(|v| v == "1");
            assert!(!required, "{why} (GRADIENT_REQUIRE_CROSS=1)");
            eprintln!("skipped: {why}");
        };
        if Platform::LinuxArm64.runnable_here().is_err() || !crate::strip::on_path("apt-get") {
            return skip("no qemu-user for aarch64 in binfmt_misc, or no apt-get");
        }
        let scratch = tempfile::tempdir().unwrap();
        let source = scratch.path().join("hello.c");
        std::fs::write(
            &source,
            "#include <dlfcn.h>\n#include <stdio.h>\nint main(void) {\n  void *z = dlopen(\"libz.so.1\", RTLD_NOW);\n  printf(\"hello from arm64, zlib %s\\n\", z ? \"loaded\" : dlerror());\n  return z ? 0 : 1;\n}\n",
        )
        .unwrap();
        let program = scratch.path().join("hello");
        let built = std::process::Command::new("aarch64-linux-gnu-gcc")
            .arg("-o")
            .arg(&program)
            .arg(&source)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            return skip("aarch64-linux-gnu-gcc is missing");
        }
        let cache = std::env::var_os("GRADIENT_TEST_DEBIAN_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| scratch.path().join("debian"));
        let debian =
            gradient_python::target_python::debian_python_root("arm64", "3.11", &cache, &|_| {})
                .unwrap();
        let target = gradient_core::TargetSystem {
            platform: Platform::LinuxArm64,
            root: debian.root.clone(),
            loader_prefix: debian.loader_prefix().unwrap(),
            glibc: debian.glibc_version().unwrap(),
            python_version: debian.python_version("3.11"),
        };
        let glibc = gradient_python::runtime::glibc_files();
        let mut base = foreign_base(&target, &glibc, &["libz.so.1".to_string()]).unwrap();
        base.push(Entry {
            path: "usr/bin/hello".into(),
            kind: EntryKind::File(std::fs::read(&program).unwrap()),
            mode: 0o755,
        });
        let root = scratch.path().join("root");
        write_entries(&root, &base).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();

        let check = machine_check(&root, Platform::LinuxArm64);
        assert!(check.passed, "{}", check.detail);
        assert!(check.detail.contains("all aarch64"), "{}", check.detail);
        assert!(root.join("usr/lib/aarch64-linux-gnu/libz.so.1").is_file());
        assert!(
            !machine_check(&root, Platform::LinuxAmd64).passed,
            "nothing of the host's machine is laid down"
        );

        let output = installed_root(&root)
            .command("/usr/bin/hello", &[])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("hello from arm64, zlib loaded"),
            "{:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
