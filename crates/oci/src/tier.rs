//! The `oci` and `docker` tiers: one image per platform the build is for (the host's
//! first), in one tarball with an image index, written by both; the docker tier then loads
//! the host's image into the engine, and each other platform's it can run under its own
//! tag (`NAME:VERSION-linux-arm64`: Docker's classic store holds one image per tag). Smoke
//! tests: the oci tier runs each image's files in a chroot without an engine, the docker
//! tier runs containers through the engine (`--platform` for another platform's); a
//! platform no emulator runs here is left unchecked, and said so in the log.

use crate::base::{read_image, unpack, Base};
use crate::content::{self, Placement};
use crate::image::{write_layout, ImageLayer, ImageSpec, Layout, PlatformImage, RunConfig};
use crate::layer::{from_recipe, make_layer, recipe_known, remember_recipe, Layer};
use crate::reference::{check_reference, default_tags};
use crate::rootfs::{
    docker_archive_for, tarball_images, unpack_image, unpack_platform_image, unpacked_image,
};
use crate::{Engine, OciError};
use async_trait::async_trait;
use gradient_core::{
    normalize_name, AppIdentity, AppScripts, AppWheel, Artifact, Backend, BackendError, BaseImage,
    BuildContext, Host, Input, Inputs, InterpreterFacts, PlannedFile, PlatformScope, ProbeOutput,
    Project, RuntimeFiles, SmokeCheck, SmokeContext, SmokeReport, Startup, TargetNeeds, Tier,
    Unavailable, DEFAULT_USER, FALLBACK_EPOCH,
};
use gradient_python::smoke::{
    ask_until_ended, judge_answer, measure_runs, measure_startup, run_check, run_probe,
    smoke_commands, startup_command, Expect, Http, SmokeCommand,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The PATH of every image gradient makes.
const PATH: &str = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A daemonless, reproducible OCI image tarball.
pub struct OciTier;

/// The same image, loaded into a Docker engine.
pub struct DockerTier;

/// What a container tier asks of its target: an engine on linux/amd64, nothing else.
fn container_needs() -> TargetNeeds {
    TargetNeeds {
        platform: Some("linux/amd64".into()),
        container_engine: true,
        carries: gradient_core::Carries::EVERYTHING,
        ..TargetNeeds::default()
    }
}

/// Both tiers build the same image from the same inputs.
const INPUTS: &[Input] = &[Input::Runtime, Input::Wheelhouse, Input::Wheel];

/// `NAME-VERSION.oci.tar`, from the normalised name: what the build writes and the plan
/// lists, for the oci tier and for docker, which delivers the same file.
pub fn file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.oci.tar")
}

/// The image tarball, as the plan names it.
fn planned_image(app: &AppIdentity) -> Vec<PlannedFile> {
    let name = gradient_core::normalize_name(&app.name);
    vec![app.planned(file_name(&name, app.version_in_name()))]
}

/// The image tarball, as `tier`'s artifact.
async fn image_artifact(cx: &BuildContext, tier: Tier) -> Result<Vec<Artifact>, BackendError> {
    // One image per platform the build is for: bound to one only when it holds one; an
    // index of several runs on each of their machines.
    let platform = match cx.targets.as_slice() {
        [] => cx.inputs.platform(),
        [one] => one.platform(),
        _ => None,
    };
    let mut needs = container_needs();
    if cx.targets.len() > 1 {
        needs.platform = None;
    } else if let Some(platform) = platform {
        needs.platform = Some(platform.oci().to_string());
    }
    Ok(vec![Artifact {
        tier,
        path: build_image(cx).await?,
        needs,
        platform,
    }])
}

/// The image ID (`sha256:` and the configuration's digest) of an image tarball gradient
/// wrote, from its docker-archive `manifest.json`.
fn image_id(tarball: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(tarball).ok()?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.as_os_str() != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).ok()?;
        let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
        let config = manifest[0]["Config"].as_str()?;
        return Some(format!("sha256:{}", config.rsplit('/').next()?));
    }
    None
}

/// A `scratch` image carries the bundle as it is; on another base the image uses the
/// base's own Python.
fn shipped_runtime(project: &Project, runtime: &RuntimeFiles) -> Option<(RuntimeFiles, bool)> {
    matches!(project.config.container.base(), BaseImage::Scratch).then(|| (runtime.clone(), true))
}

/// What an image depends on besides gradient's inputs: the host's glibc files a `scratch`
/// base carries, or the base tarball; nothing reusable for a base taken from the engine.
/// And the commit the project is at, which the config's revision label names.
fn base_fingerprint(project: &Project) -> Option<String> {
    let base = match project.config.container.base() {
        BaseImage::Scratch => glibc_stamps(),
        // A folder layout may change inside without its own stamp changing.
        BaseImage::Oci(path) if project.root.join(&path).is_file() => {
            stamp(&project.root.join(path))
        }
        BaseImage::Oci(_) | BaseImage::Docker(_) => None,
    }?;
    // The image's revision label: a new commit of the same tree makes a new config.
    let revision = git_revision(&project.root).unwrap_or_default();
    Some(format!("{base}\nrevision {revision}"))
}

/// The path, size and modification time of each glibc file a scratch base carries.
fn glibc_stamps() -> Option<String> {
    gradient_python::runtime::glibc_files()
        .iter()
        .map(|(_, path)| stamp(path))
        .collect::<Option<Vec<_>>>()
        .map(|stamps| stamps.join("\n"))
}

/// What identifies one version of a file or folder: its path, inode, size and modification
/// time. A cached folder (the runtime bundle, the installed dependencies) is named by the
/// hash of its inputs and gets a new inode and time when it is made again; a host file
/// replaced or changed in place gets a new inode or time too.
fn stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(format!(
        "{} {} {} {}.{}",
        path.display(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

fn preflight(host: &Host) -> Result<(), Unavailable> {
    host.require_interpreter()?;
    let python = host.interpreter.as_ref().expect("checked above");
    if python.platform_tag != "linux_x86_64" {
        return Err(Unavailable {
            reason: format!(
                "images are built for linux/amd64 only, and this interpreter is for {}",
                python.platform_tag
            ),
            hint: None,
        });
    }
    // The runtime bundle is built for every image, whatever its base.
    gradient_python::runtime::require_bundleable(python)
}

#[async_trait]
impl Backend for OciTier {
    fn tier(&self) -> Tier {
        Tier::Oci
    }

    /// One tarball holds every platform's image, in one image index.
    fn platform_scope(&self) -> PlatformScope {
        PlatformScope::Together
    }

    fn target_needs(&self, _project: &Project, _python: &InterpreterFacts) -> TargetNeeds {
        container_needs()
    }

    fn inputs(&self) -> &'static [Input] {
        INPUTS
    }

    fn artifact_files(
        &self,
        _project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        _platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        planned_image(app)
    }

    fn fingerprint(&self, project: &Project) -> Option<String> {
        base_fingerprint(project)
    }

    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        preflight(host)
    }

    async fn prepare(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        cache: &Path,
    ) -> Option<String> {
        prepare_base_layers(project, runtime, cache).await
    }

    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        image_artifact(cx, Tier::Oci).await
    }

    async fn shipped_runtime(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        _cache: &Path,
    ) -> Option<(RuntimeFiles, bool)> {
        shipped_runtime(project, runtime)
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let rootfs = tokio::task::block_in_place(|| unpack_image(&artifact.path, &cx.scratch))?;
        let mut checks = custom_entrypoint_check(&cx.project, || Ok(rootfs.starting_program()))?;
        let (_, entry) = app_and_scripts(&cx.inputs)?;
        checks.extend(chroot_checks(&rootfs, cx, entry, "").await);
        checks.extend(required_but_unrunnable(&artifact.path)?);
        // The other platforms' images, each in its own files, under the emulator.
        for platform in other_platforms(&artifact.path)? {
            let rootfs = tokio::task::block_in_place(|| {
                unpack_platform_image(&artifact.path, &cx.scratch, platform)
            })?;
            let shown = format!("{}, under qemu-user, ", platform.oci());
            checks.extend(chroot_checks(&rootfs, cx, entry, &shown).await);
            let Some(start) = gradient_wheel::installed_script_start(
                &rootfs.root,
                "/usr/local/bin",
                entry.scripts.keys(),
            ) else {
                continue;
            };
            let args = ["-c".to_string(), MACHINE.to_string()];
            checks.push(
                run_check(
                    format!(
                        "{} -c '{MACHINE}' ({shown}in the image's files, chroot, no network)",
                        start.interpreter[0]
                    ),
                    rootfs.command(&start.interpreter[0], &args),
                    &Expect::output(Some(platform.machine())),
                )
                .await,
            );
        }
        Ok(SmokeReport { checks })
    }

    /// The Python the console scripts name in their `#!` line, in the image's files the
    /// smoke test unpacked (chroot, fresh namespaces, no network).
    async fn probe(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        let (_, entry) = app_and_scripts(&cx.inputs)?;
        let rootfs = unpacked_image(&artifact.path, &cx.scratch)?;
        let scripts = entry.scripts.keys();
        let Some(start) =
            gradient_wheel::installed_script_start(&rootfs.root, "/usr/local/bin", scripts)
        else {
            return Ok(None);
        };
        let (args, shown) = start.probe_arguments(code);
        let command = rootfs.command(&start.interpreter[0], &args);
        Ok(Some(
            run_probe(format!("{shown} (in the image's files, chroot)"), command).await,
        ))
    }

    /// In the image's files the smoke test unpacked (chroot, fresh namespaces, no engine),
    /// twice.
    async fn startup(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        let (_, entry) = app_and_scripts(&cx.inputs)?;
        let main = entry.default.iter().chain(entry.scripts.keys());
        let Some(SmokeCommand { argv, expect }) =
            startup_command(&cx.project, cx.reference.as_deref(), main)
        else {
            return Ok(None);
        };
        let rootfs = unpacked_image(&artifact.path, &cx.scratch)?;
        let program = format!("/usr/local/bin/{}", argv[0]);
        let make = || rootfs.command(&program, &argv[1..]);
        Ok(Some(measure_startup(&argv, make, &expect).await?))
    }
}

#[async_trait]
impl Backend for DockerTier {
    fn tier(&self) -> Tier {
        Tier::Docker
    }

    /// One tarball holds every platform's image, in one image index.
    fn platform_scope(&self) -> PlatformScope {
        PlatformScope::Together
    }

    fn target_needs(&self, _project: &Project, _python: &InterpreterFacts) -> TargetNeeds {
        container_needs()
    }

    fn inputs(&self) -> &'static [Input] {
        INPUTS
    }

    fn artifact_files(
        &self,
        _project: &Project,
        _python: &InterpreterFacts,
        app: &AppIdentity,
        _platforms: &[gradient_core::Platform],
    ) -> Vec<PlannedFile> {
        planned_image(app)
    }

    fn fingerprint(&self, project: &Project) -> Option<String> {
        base_fingerprint(project)
    }

    /// The engine first: what the docker tier adds to the oci tier's needs is the reason
    /// a user looks for on its row.
    fn preflight(&self, host: &Host) -> Result<(), Unavailable> {
        if let Some(Err(engine)) = &host.container_engine {
            let oci = "the oci tier writes the same image as a tarball";
            return Err(Unavailable {
                reason: format!("no Docker engine: {}", engine.reason),
                hint: Some(match &engine.hint {
                    Some(hint) => format!("{hint}; {oci}"),
                    None => oci.to_string(),
                }),
            });
        }
        preflight(host)
    }

    async fn prepare(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        cache: &Path,
    ) -> Option<String> {
        prepare_base_layers(project, runtime, cache).await
    }

    fn delivers(&self) -> Option<Tier> {
        Some(Tier::Oci)
    }

    /// Never called by the driver, which has the oci tier build the image once.
    async fn build(&self, cx: &BuildContext) -> Result<Vec<Artifact>, BackendError> {
        let mut artifacts = OciTier.build(cx).await?;
        for artifact in &mut artifacts {
            artifact.tier = Tier::Docker;
        }
        Ok(artifacts)
    }

    async fn shipped_runtime(
        &self,
        project: &Project,
        runtime: &RuntimeFiles,
        _cache: &Path,
    ) -> Option<(RuntimeFiles, bool)> {
        shipped_runtime(project, runtime)
    }

    async fn deliver(
        &self,
        artifact: &Artifact,
        cx: &BuildContext,
    ) -> Result<Option<String>, BackendError> {
        let tags = image_tags(app_and_scripts(&cx.inputs)?.0, &cx.image_tags)?;
        let engine = Engine::connect()
            .await
            .map_err(|e| not_loaded(e, artifact))?;
        // An unchanged image whose tags all name it already is not loaded again.
        let id = tokio::task::block_in_place(|| image_id(&artifact.path));
        let mut held = Vec::new();
        for tag in &tags {
            held.extend(engine.image(tag).await);
        }
        if id.is_some()
            && held.len() == tags.len()
            && held.iter().all(|image| Some(&image.id) == id.as_ref())
        {
            let mut said = format!(
                "already in Docker {} as {}",
                engine.version,
                tags.join(", ")
            );
            for line in deliver_other_platforms(&engine, artifact, &tags).await? {
                said.push_str(&format!("; {line}"));
            }
            return Ok(Some(said));
        }
        let (_, left_out) = engine
            .load(&artifact.path, &held)
            .await
            .map_err(|e| not_loaded(e, artifact))?;
        let unsent = match left_out {
            0 => String::new(),
            n => format!(" (the engine had {n} of its layers: not sent again)"),
        };
        let mut said = format!(
            "loaded into Docker {} as {}{unsent}",
            engine.version,
            tags.join(", ")
        );
        for line in deliver_other_platforms(&engine, artifact, &tags).await? {
            said.push_str(&format!("; {line}"));
        }
        Ok(Some(said))
    }

    async fn smoke(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<SmokeReport, BackendError> {
        let (app, entry) = app_and_scripts(&cx.inputs)?;
        let image = image_tags(app, &cx.image_tags)?.remove(0);
        let engine = Engine::connect().await?;
        let mut checks = custom_entrypoint_check(&cx.project, || {
            tokio::task::block_in_place(|| unpack_image(&artifact.path, &cx.scratch))
                .map(|rootfs| rootfs.starting_program())
        })?;
        for SmokeCommand { argv, expect } in
            smoke_commands(&cx.project, cx.reference.as_deref(), entry.scripts.keys())
        {
            checks.push(container_check(&engine, entry, &image, cx, &argv, &expect).await);
        }
        checks.extend(required_but_unrunnable(&artifact.path)?);
        // The other platforms' images deliver loaded under their own tags, run as
        // `docker run --platform` runs them.
        for platform in other_platforms(&artifact.path)? {
            let engine = engine.on_platform(platform);
            let image = platform_tag(&image, platform);
            let flag = format!("docker run --platform {} ", platform.oci());
            for SmokeCommand { argv, expect } in
                smoke_commands(&cx.project, cx.reference.as_deref(), entry.scripts.keys())
            {
                let mut check = container_check(&engine, entry, &image, cx, &argv, &expect).await;
                check.command = check.command.replacen("docker run ", &flag, 1);
                checks.push(check);
            }
            checks.push(
                machine_check(&engine, &artifact.path, entry, &image, &flag, platform, cx).await?,
            );
        }
        Ok(SmokeReport { checks })
    }

    /// The Python the console scripts name in their `#!` line, in a container of the image
    /// (without network), as its entrypoint.
    async fn probe(
        &self,
        artifact: &Artifact,
        cx: &SmokeContext,
        code: &str,
    ) -> Result<Option<ProbeOutput>, BackendError> {
        let (app, entry) = app_and_scripts(&cx.inputs)?;
        let image = image_tags(app, &cx.image_tags)?.remove(0);
        let rootfs =
            tokio::task::block_in_place(|| match unpacked_image(&artifact.path, &cx.scratch) {
                Ok(rootfs) if rootfs.root.is_dir() => Ok(rootfs),
                _ => unpack_image(&artifact.path, &cx.scratch),
            })?;
        let scripts = entry.scripts.keys();
        let Some(start) =
            gradient_wheel::installed_script_start(&rootfs.root, "/usr/local/bin", scripts)
        else {
            return Ok(None);
        };
        let (args, _) = start.probe_arguments(code);
        let engine = Engine::connect().await?;
        let command = format!(
            "docker run --network none --entrypoint {} {image} {} -c PROBE, after the scripts' own set-up",
            start.interpreter[0],
            start.interpreter[1..].join(" ")
        );
        let run = engine
            .run(&image, Some(&start.interpreter[..1]), &args, None)
            .await?;
        Ok(Some(ProbeOutput {
            command,
            stdout: if run.exit_code == 0 {
                Ok(run.stdout)
            } else {
                Err(format!(
                    "exited with {}\n{}",
                    run.exit_code,
                    tail(&run.output)
                ))
            },
        }))
    }

    /// Two containers of the image in a row: the engine's first start of the freshly loaded
    /// image, then a warm one. Each is timed from start to exit.
    async fn startup(
        &self,
        _artifact: &Artifact,
        cx: &SmokeContext,
    ) -> Result<Option<Startup>, BackendError> {
        let (app, entry) = app_and_scripts(&cx.inputs)?;
        let main = entry.default.iter().chain(entry.scripts.keys());
        let Some(SmokeCommand { argv, expect }) =
            startup_command(&cx.project, cx.reference.as_deref(), main)
        else {
            return Ok(None);
        };
        let image = image_tags(app, &cx.image_tags)?.remove(0);
        let engine = Engine::connect().await?;
        let run = || container_check(&engine, entry, &image, cx, &argv, &expect);
        Ok(Some(measure_runs(&argv, run).await?))
    }
}

/// What the emulated platforms' smoke tests run to see which machine they run on.
const MACHINE: &str = "import platform; print(platform.machine())";

/// The platforms of the image tarball's images other than the host's that this machine
/// can run (an emulator registered for them); one it cannot is skipped and said so in the
/// log: the report gets no check for it, so it neither passes nor fails.
fn other_platforms(tarball: &Path) -> Result<Vec<gradient_core::Platform>, OciError> {
    let images = tokio::task::block_in_place(|| tarball_images(tarball))?;
    Ok(images
        .into_iter()
        .map(|image| image.platform)
        .filter(|platform| !platform.is_host())
        .filter(|platform| match platform.runnable_here() {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!("the {} image is not smoke-tested: {why}", platform.oci());
                false
            }
        })
        .collect())
}

/// A failed check for each image of the tarball whose platform no emulator here runs, when
/// the run insists that every artifact be checked (`GRADIENT_REQUIRE_CHECKERS=1`, as CI
/// sets); without it they are only said in the log ([`other_platforms`]).
fn required_but_unrunnable(tarball: &Path) -> Result<Vec<SmokeCheck>, OciError> {
    if std::env::var("GRADIENT_REQUIRE_CHECKERS").map_or(true, |v| v != "1") {
        return Ok(Vec::new());
    }
    let images = tokio::task::block_in_place(|| tarball_images(tarball))?;
    Ok(images
        .into_iter()
        .filter_map(|image| {
            let why = image.platform.runnable_here().err()?;
            Some(SmokeCheck {
                command: format!("smoke-test the {} image", image.platform.oci()),
                passed: false,
                exit_code: None,
                seconds: 0.0,
                detail: format!(
                    "skipped: {why} (GRADIENT_REQUIRE_CHECKERS=1 makes this a failure)"
                ),
            })
        })
        .collect())
}

/// The smoke commands in an unpacked image's files (chroot, fresh namespaces); `shown`
/// says which platform's, when not the host's.
async fn chroot_checks(
    rootfs: &gradient_sandbox::Rootfs,
    cx: &SmokeContext,
    entry: &AppScripts,
    shown: &str,
) -> Vec<SmokeCheck> {
    let mut checks = Vec::new();
    for SmokeCommand { argv, expect } in
        smoke_commands(&cx.project, cx.reference.as_deref(), entry.scripts.keys())
    {
        let program = format!("/usr/local/bin/{}", argv[0]);
        let (command, network) = rootfs.smoke_command(&program, &argv[1..], expect.http.is_some());
        checks.push(
            run_check(
                format!(
                    "{} ({shown}in the image's files, chroot, {network})",
                    argv.join(" ")
                ),
                command,
                &expect,
            )
            .await,
        );
    }
    checks
}

/// `tag` for the image of `platform`: its tag with the platform after it
/// (`app:1.0` → `app:1.0-linux-arm64`). Docker's classic image store holds one image per
/// tag, so each platform's image gets its own.
pub fn platform_tag(tag: &str, platform: gradient_core::Platform) -> String {
    let name_start = tag.rfind('/').map_or(0, |i| i + 1);
    let (repository, version) = match tag[name_start..].rfind(':') {
        Some(i) => (&tag[..name_start + i], &tag[name_start + i + 1..]),
        None => (tag, "latest"),
    };
    format!(
        "{repository}:{version}-{}",
        platform.oci().replace('/', "-")
    )
}

/// Load each image of the tarball for a platform other than the host's that this machine
/// can run, under its platform's tags ([`platform_tag`]); one it cannot run is left out,
/// and said so. Returns a line for each.
async fn deliver_other_platforms(
    engine: &Engine,
    artifact: &Artifact,
    tags: &[String],
) -> Result<Vec<String>, OciError> {
    let images = tokio::task::block_in_place(|| tarball_images(&artifact.path))?;
    let mut said = Vec::new();
    for image in images.iter().filter(|image| !image.platform.is_host()) {
        let platform = image.platform;
        if let Err(why) = platform.runnable_here() {
            said.push(format!("the {} image not loaded: {why}", platform.oci()));
            continue;
        }
        // The suffix can make a tag too long, or one the user gave for something else.
        let host_tags = tags;
        let tags: Vec<String> = host_tags
            .iter()
            .map(|t| crate::reference::check_reference(&platform_tag(t, platform)))
            .collect::<Result<_, _>>()?;
        if let Some(clash) = tags.iter().find(|t| host_tags.contains(t)) {
            return Err(OciError::BadReference {
                reference: clash.clone(),
                reason: format!(
                    "it is asked for as a tag of the host's image, and is the {platform} image's tag too"
                ),
            });
        }
        let id = format!(
            "sha256:{}",
            image.config.rsplit('/').next().unwrap_or_default()
        );
        let mut held = Vec::new();
        for tag in &tags {
            held.extend(engine.image(tag).await);
        }
        if held.len() == tags.len() && held.iter().all(|h| h.id == id) {
            said.push(format!(
                "its {} image already as {}",
                platform.oci(),
                tags.join(", ")
            ));
            continue;
        }
        let archive =
            tokio::task::block_in_place(|| docker_archive_for(&artifact.path, image, &tags))?;
        engine
            .load_archive(archive, &held)
            .await
            .map_err(|e| not_loaded(e, artifact))?;
        said.push(format!(
            "its {} image as {} (run it with `docker run --platform {} {}`)",
            platform.oci(),
            tags.join(", "),
            platform.oci(),
            tags[0]
        ));
    }
    Ok(said)
}

/// In a container of another platform's image: its Python says it runs on that
/// platform's machine (`aarch64`), so the engine ran that image, under the emulator.
async fn machine_check(
    engine: &Engine,
    artifact: &Path,
    entry: &AppScripts,
    image: &str,
    flag: &str,
    platform: gradient_core::Platform,
    cx: &SmokeContext,
) -> Result<SmokeCheck, OciError> {
    // The image's own Python, as its console scripts name it.
    let rootfs =
        tokio::task::block_in_place(|| unpack_platform_image(artifact, &cx.scratch, platform))?;
    let python = gradient_wheel::installed_script_start(
        &rootfs.root,
        "/usr/local/bin",
        entry.scripts.keys(),
    )
    .map(|start| start.interpreter[0].clone())
    .unwrap_or_else(|| "python3".to_string());
    let shown = format!("{flag}--network none --entrypoint {python} {image} -c '{MACHINE}'");
    let args = ["-c".to_string(), MACHINE.to_string()];
    let check = match engine.run(image, Some(&[python]), &args, None).await {
        Err(error) => SmokeCheck {
            command: shown,
            passed: false,
            exit_code: None,
            seconds: 0.0,
            detail: with_hint(&error),
        },
        Ok(run) => {
            let said = run.stdout.trim().to_string();
            SmokeCheck {
                command: shown,
                passed: run.exit_code == 0 && said == platform.machine(),
                exit_code: Some(run.exit_code as i32),
                seconds: run.seconds,
                detail: if run.exit_code == 0 && said == platform.machine() {
                    format!("printed `{said}`: the {} image ran", platform.oci())
                } else {
                    format!(
                        "expected `{}`, exited {}\n{}",
                        platform.machine(),
                        run.exit_code,
                        tail(&run.output)
                    )
                },
            }
        }
    };
    Ok(check)
}

/// The numeric owner of a resolved image user (`root`, `UID` or `UID:GID`).
fn numeric_owner(user: &str) -> (u64, u64) {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let number = |text: &str| text.parse::<u64>().unwrap_or(0);
    (number(uid), number(gid))
}

/// With a `container.entrypoint` of the project's own, the smoke commands run their
/// console scripts by name and never start it: one check that what `docker run IMAGE`
/// starts is an executable file of the image. `program` looks it up.
fn custom_entrypoint_check(
    project: &Project,
    program: impl FnOnce() -> Result<Result<String, String>, OciError>,
) -> Result<Vec<SmokeCheck>, OciError> {
    if project.config.container.entrypoint.is_none() {
        return Ok(Vec::new());
    }
    let found = program()?;
    Ok(vec![SmokeCheck {
        command: "the image's entrypoint is an executable of the image".into(),
        passed: found.is_ok(),
        exit_code: None,
        seconds: 0.0,
        detail: match found {
            Ok(path) => format!("`{path}`"),
            Err(why) => why,
        },
    }])
}

/// Run one smoke command in a container without network: the main script through the
/// image's own entrypoint, as `docker run IMAGE ARGS` would; other scripts by name. Passed
/// when it exits 0 and prints `expect` (when given).
async fn container_check(
    engine: &Engine,
    entry: &AppScripts,
    image: &str,
    cx: &SmokeContext,
    argv: &[String],
    expect: &Expect,
) -> SmokeCheck {
    let own_entrypoint = cx.project.config.container.entrypoint.is_none();
    let (entrypoint, args, shown) =
        if own_entrypoint && entry.default.as_deref() == Some(argv[0].as_str()) {
            (
                None,
                &argv[1..],
                format!("docker run --network none {image} {}", argv[1..].join(" ")),
            )
        } else if own_entrypoint && entry.default.is_none() {
            // No entrypoint: the script is the command, as a user runs it.
            (
                None,
                argv,
                format!("docker run --network none {image} {}", argv.join(" ")),
            )
        } else {
            (
                Some(vec![format!("/usr/local/bin/{}", argv[0])]),
                &argv[1..],
                format!(
                    "docker run --network none --entrypoint {} {image} {}",
                    argv[0],
                    argv[1..].join(" ")
                ),
            )
        };
    if let Some(http) = &expect.http {
        let shown = shown.replace(
            "docker run --network none",
            &format!("docker run -p 127.0.0.1:{0}:{0}", http.port),
        );
        return serve_check(
            engine,
            image,
            entrypoint.as_deref(),
            args,
            shown,
            expect,
            http,
        )
        .await;
    }
    let stdin = expect.stdin.as_deref().map(str::as_bytes);
    match engine.run(image, entrypoint.as_deref(), args, stdin).await {
        Err(error) => SmokeCheck {
            command: shown,
            passed: false,
            exit_code: None,
            seconds: 0.0,
            detail: with_hint(&error),
        },
        Ok(run) => {
            let printed = expect
                .output
                .as_deref()
                .is_none_or(|e| run.output.contains(e));
            let exited_as_expected = run.exit_code == i64::from(expect.exit);
            SmokeCheck {
                command: shown,
                passed: exited_as_expected && printed,
                exit_code: Some(run.exit_code as i32),
                seconds: run.seconds,
                detail: if !exited_as_expected {
                    format!(
                        "exited with {}, expected exit code {}{}\n{}",
                        run.exit_code,
                        expect.exit,
                        if expect.exit_from_reference {
                            ", as it does in the reference venv"
                        } else {
                            ""
                        },
                        tail(&run.output)
                    )
                } else if !printed {
                    format!(
                        "expected `{}` in its output, got:\n{}",
                        expect.output.as_deref().unwrap_or_default(),
                        tail(&run.output)
                    )
                } else {
                    let exited = format!(
                        "container started and exited {} in {:.2}s",
                        run.exit_code, run.seconds
                    );
                    match expect.output.as_deref() {
                        Some(expected) => format!("printed `{expected}`; {exited}"),
                        None => exited,
                    }
                },
            }
        }
    }
}

/// A server in a container, its port published on 127.0.0.1: asked over HTTP until it
/// answers, then stopped.
async fn serve_check(
    engine: &Engine,
    image: &str,
    entrypoint: Option<&[String]>,
    args: &[String],
    shown: String,
    expect: &Expect,
    http: &Http,
) -> SmokeCheck {
    let started = std::time::Instant::now();
    let failed = |detail: String| SmokeCheck {
        command: shown.clone(),
        passed: false,
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        detail,
    };
    let serving = match engine.serve(image, entrypoint, args, http.port).await {
        Ok(serving) => serving,
        Err(error) => return failed(with_hint(&error)),
    };
    let answer = ask_until_ended(http, || serving.ended()).await;
    let printed = serving.stop().await;
    match answer.and_then(|(status, body)| judge_answer(status, &body, expect)) {
        Ok(detail) => SmokeCheck {
            command: shown.clone(),
            passed: true,
            exit_code: None,
            seconds: started.elapsed().as_secs_f64(),
            detail,
        },
        Err(why) => failed(format!("{why}\n{}", tail(&printed))),
    }
}

/// An engine's error as a smoke check's detail: its text, then its hint.
fn with_hint(error: &OciError) -> String {
    gradient_core::render(
        &error.to_string(),
        gradient_core::Hint::hint(error).as_deref(),
    )
}

/// The image is in the output folder but not in the engine: say how to load it by hand.
fn not_loaded(error: OciError, artifact: &Artifact) -> OciError {
    match error {
        OciError::NoEngine { address, reason } => OciError::NoEngine {
            address,
            reason: format!(
                "{reason}\n  the image is written: load it later with `docker load -i {}`",
                artifact.path.display()
            ),
        },
        other => other,
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// The app's wheel and the scripts its image runs: what every container step reads.
fn app_and_scripts(inputs: &Inputs) -> Result<(&AppWheel, &AppScripts), OciError> {
    let app = inputs.app()?;
    Ok((app, app.scripts()?))
}

/// The references the image is tagged with: `--tag`, else the defaults.
fn image_tags(app: &AppWheel, requested: &[String]) -> Result<Vec<String>, OciError> {
    if requested.is_empty() {
        return default_tags(&normalize_name(app.name()), app.version());
    }
    requested.iter().map(|t| check_reference(t)).collect()
}

/// Build the image tarball in `cx.work_dir` and return its path: one image per platform
/// of `cx.targets` (the host's first, the one `docker load` takes), in one layout.
async fn build_image(cx: &BuildContext) -> Result<PathBuf, OciError> {
    let (app, entry) = app_and_scripts(&cx.inputs)?;
    let (name, version) = (&normalize_name(app.name()), app.version());
    let tags = image_tags(app, &cx.image_tags)?;
    let settings = &cx.project.config.container;
    let mtime = cx.source_date.seconds;
    let targets = match cx.targets.is_empty() {
        true => vec![cx.inputs.clone()],
        false => cx.targets.clone(),
    };

    // The base, and where Python things go on it.
    let base_setting = settings.base();
    let (base, shown_base) = match &base_setting {
        BaseImage::Scratch => (None, "scratch".to_string()),
        BaseImage::Docker(image) => {
            let tarball = cx.work_dir.join("base.tar");
            Engine::connect().await?.export(image, &tarball).await?;
            let dir = cx.work_dir.join("base");
            let shown = format!("docker:{image}");
            let base = tokio::task::block_in_place(|| {
                unpack(&tarball, &dir)?;
                read_image(&dir, &shown)
            })?;
            (Some(base), shown)
        }
        BaseImage::Oci(path) => {
            let path = cx.project.root.join(path);
            let shown = format!("oci:{}", path.display());
            if !path.exists() {
                return Err(OciError::BaseMissing { path });
            }
            let base = tokio::task::block_in_place(|| {
                if path.is_dir() {
                    read_image(&path, &shown)
                } else {
                    let dir = cx.work_dir.join("base");
                    unpack(&path, &dir)?;
                    read_image(&dir, &shown)
                }
            })?;
            (Some(base), shown)
        }
    };
    // A base is read for the host's platform: another platform's image would carry the
    // host's files.
    if let Some(foreign) = targets.iter().find_map(|t| t.target.as_ref()) {
        if base.is_some() {
            return Err(OciError::ForeignBase {
                base: shown_base,
                platform: foreign.platform.oci().to_string(),
            });
        }
    }
    let base_python = base.as_ref().and_then(|b: &Base| b.python.clone());
    if let Some(found) = &base_python {
        let (major, minor, _) = cx.python.version;
        if found.version != (major, minor) {
            return Err(OciError::BasePythonMismatch {
                base: shown_base,
                python: found.placement.python.clone(),
                found: format!("{}.{}", found.version.0, found.version.1),
                wanted: format!("{major}.{minor}"),
            });
        }
    }

    let user = match settings.user() {
        user if user == DEFAULT_USER => format!("{0}:{0}", gradient_sandbox::APP_UID),
        // The scratch image's /etc/passwd has root, app and nobody.
        user if base.is_none() && user == "nobody" => "65534:65534".to_string(),
        user if base.is_none()
            && user != "root"
            && !user.split(':').all(|p| p.parse::<u32>().is_ok()) =>
        {
            return Err(OciError::UnknownUser { user })
        }
        user => user,
    };
    let shared = Shared {
        app,
        entry,
        base: base.as_ref(),
        base_python: base_python.as_ref(),
        user: &user,
        name,
        version,
        mtime,
    };
    let mut images = Vec::new();
    for inputs in &targets {
        let platform = inputs
            .platform()
            .unwrap_or(gradient_core::Platform::LinuxAmd64);
        images.push((
            platform,
            platform_image(cx, inputs, platform, &shared).await?,
        ));
    }
    let layout = Layout {
        images: images
            .iter()
            .map(|(platform, spec)| PlatformImage {
                platform: *platform,
                spec,
            })
            .collect(),
        tags,
        docker_load: images[0].0,
    };
    let path = cx.work_dir.join(file_name(name, version));
    tokio::task::block_in_place(|| write_layout(&layout, mtime, &path))?;
    Ok(path)
}

/// What every platform's image of one build has in common.
struct Shared<'a> {
    app: &'a AppWheel,
    entry: &'a AppScripts,
    base: Option<&'a Base>,
    base_python: Option<&'a crate::base::BasePython>,
    /// The image's user, resolved (`UID:GID`, `root`).
    user: &'a str,
    name: &'a str,
    version: &'a str,
    mtime: u64,
}

/// The C library a scratch image of `inputs`' platform carries: the host's for the host,
/// else the target's, from its libc-only root (`lib/TRIPLET/libc.so.6` …), never the host's.
fn image_glibc(inputs: &Inputs) -> Result<Vec<(String, PathBuf)>, OciError> {
    let Some(target) = &inputs.target else {
        return Ok(gradient_python::runtime::glibc_files());
    };
    let lib = target.loader_prefix.join("lib");
    let missing = || OciError::BadBase {
        base: format!("scratch for {}", target.platform.oci()),
        reason: format!(
            "no C library for it in `{}` (expected lib/TRIPLET/libc.so.6)",
            target.loader_prefix.display()
        ),
    };
    let triplet_dir = std::fs::read_dir(&lib)
        .map_err(|_| missing())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && p.to_string_lossy().ends_with("-linux-gnu"))
        .ok_or_else(missing)?;
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&triplet_dir)
        .map_err(io_error("read", &triplet_dir))?
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.sort();
    if !files.iter().any(|(name, _)| name == "libc.so.6") {
        return Err(missing());
    }
    Ok(files)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io {
        action,
        path,
        source,
    }
}

/// One platform's image: its base (or scratch root with that platform's C library), its
/// runtime, dependencies and app layers, and its config.
async fn platform_image(
    cx: &BuildContext,
    inputs: &Inputs,
    platform: gradient_core::Platform,
    shared: &Shared<'_>,
) -> Result<ImageSpec, OciError> {
    let wheelhouse = inputs.wheelhouse()?;
    let runtime = inputs.runtime()?;
    let settings = &cx.project.config.container;
    let (app, entry, base) = (shared.app, shared.entry, shared.base);
    let placement = match shared.base_python {
        Some(found) => found.placement.clone(),
        None => Placement::bundled(&runtime.python, &runtime.site_packages),
    };
    // The host's own layers keep the paths and recipes they always had.
    let foreign = inputs.target.as_ref();
    let staging = match foreign {
        None => cx.work_dir.join("layers"),
        Some(_) => cx
            .work_dir
            .join(format!("layers-{}", platform.oci().replace('/', "-"))),
    };
    // Bytecode depends on CPython's X.Y only: the build interpreter compiles for any
    // platform whose runtime is its X.Y; another runs itself, under qemu-user.
    let (major, minor, _) = cx.python.version;
    let foreign_python = runtime.dir.join(&runtime.python);
    let compiler = match foreign {
        Some(target) if !runtime.python.ends_with(&format!("python{major}.{minor}")) => {
            content::Compiler {
                python: &foreign_python,
                loader_prefix: Some(&target.loader_prefix),
            }
        }
        _ => content::Compiler {
            python: &cx.python.executable,
            loader_prefix: None,
        },
    };

    let cache = &cx.cache_dir;
    let root = |_: &gradient_archive::Entry| (0, 0);
    let mut layers: Vec<ImageLayer> = Vec::new();
    let glibc = match base {
        Some(_) => Vec::new(),
        None => tokio::task::block_in_place(|| image_glibc(inputs))?,
    };
    if let Some(base) = base {
        layers.extend(base.layers.iter().map(|layer| ImageLayer {
            layer: layer.clone(),
            created_by: String::new(),
        }));
    } else {
        let layer = tokio::task::block_in_place(|| scratch_layer(cache, &glibc, foreign))?;
        let from = match foreign {
            None => "the build host".to_string(),
            Some(target) => format!("Debian's {}", target.platform.oci()),
        };
        layers.push(ImageLayer {
            layer,
            created_by: format!(
                "gradient: C library from {from}, /etc, user {DEFAULT_USER} ({})",
                gradient_sandbox::APP_UID
            ),
        });
    }
    // What the dependencies' extension modules link from the system (libstdc++.so.6):
    // a base of its own provides it or not, scratch has only glibc and must bring it.
    let system = match (base, foreign) {
        (None, None) => gradient_python::runtime::system_libraries(
            &wheelhouse.site,
            Some(&runtime.dir.join("lib")),
        ),
        // Looked up in the target's root as its loader would, never on the host.
        (None, Some(target)) => {
            gradient_python::runtime::Sysroot::of_machine(&target.root, target.platform.machine())
                .map(|system| {
                    gradient_python::runtime::system_libraries_in(
                        &system,
                        &wheelhouse.site,
                        Some(&runtime.dir.join("lib")),
                    )
                })
                .unwrap_or_default()
        }
        (Some(_), _) => Vec::new(),
    };
    if !system.is_empty() {
        let entries = gradient_sandbox::system_libraries(&glibc, &system)?;
        let layer =
            tokio::task::block_in_place(|| make_layer(&entries, FALLBACK_EPOCH, &root, cache))?;
        let names: Vec<&str> = system.iter().map(|(name, _)| name.as_str()).collect();
        layers.push(ImageLayer {
            layer,
            created_by: format!(
                "gradient: system libraries the dependencies link ({})",
                names.join(", ")
            ),
        });
    }
    if shared.base_python.is_none() {
        let layer = tokio::task::block_in_place(|| runtime_layer(runtime, cache))?;
        layers.push(ImageLayer {
            layer,
            created_by: format!("gradient: CPython {} runtime", cx.python.full_version()),
        });
    }

    // The installed dependencies, compiled for their place in the image.
    let recipe = stamp(&wheelhouse.site).map(|site| {
        let mut recipe = format!(
            "dependencies\n{site}\n{}\n{}\n{}",
            compiler.python.display(),
            cx.python.full_version(),
            placement.site
        );
        if let Some(target) = foreign {
            recipe.push_str(&format!("\nplatform {}", target.platform.oci()));
        }
        recipe
    });
    let layer = match recipe.as_deref().and_then(|r| from_recipe(r, cache)) {
        Some(layer) => layer,
        None => {
            let deps = content::site_layer(
                &staging.join("dependencies"),
                &placement,
                compiler,
                |site| {
                    Ok(gradient_python::wheelhouse::copy_site(
                        &wheelhouse.site,
                        site,
                    )?)
                },
                &BTreeMap::new(),
            )
            .await?;
            // Fixed times here too: the dependencies do not change with the app's source
            // date, and their layer must not either.
            let layer =
                tokio::task::block_in_place(|| make_layer(&deps, FALLBACK_EPOCH, &root, cache))?;
            if let Some(recipe) = &recipe {
                remember_recipe(recipe, &layer, cache);
            }
            layer
        }
    };
    layers.push(ImageLayer {
        layer,
        created_by: format!(
            "gradient: {} locked dependencies",
            wheelhouse.packages.len()
        ),
    });

    let mut script_files = BTreeMap::new();
    for (script, target) in &entry.scripts {
        let text =
            gradient_wheel::bundled_console_script(&placement.python, target).ok_or_else(|| {
                OciError::BadEntryPoint {
                    script: script.clone(),
                    entry: target.clone(),
                }
            })?;
        script_files.insert(script.clone(), text.into_bytes());
    }
    // Legacy scripts, as pip installs them: a Python one's `#!` line names the image's
    // Python, any other is copied as it is.
    for (script, data) in &app.info.legacy_scripts {
        let installed = gradient_wheel::install_legacy_script(&placement.python, data);
        script_files.insert(script.clone(), installed);
    }
    let mut app_entries = content::site_layer(
        &staging.join("app"),
        &placement,
        compiler,
        |site| Ok(gradient_wheel::install_wheel_files(&app.path, site)?),
        &script_files,
    )
    .await?;
    // A working folder of the project's own on scratch is made here, owned by the image's
    // user (the engine would make it owned by root, where the app could not write).
    let workdir_owner = numeric_owner(shared.user);
    let own_workdir = settings
        .workdir
        .as_ref()
        .map(|dir| dir.get_ref().trim_matches('/').to_string())
        .filter(|dir| {
            base.is_none()
                && !dir.is_empty()
                && *dir != format!("home/{DEFAULT_USER}")
                && !app_entries.iter().any(|e| e.path == *dir)
        });
    if let Some(dir) = &own_workdir {
        app_entries.push(gradient_archive::Entry {
            path: dir.clone(),
            kind: gradient_archive::EntryKind::Dir,
            mode: 0o755,
        });
    }
    let owner = |entry: &gradient_archive::Entry| match &own_workdir {
        Some(dir) if entry.path == *dir => workdir_owner,
        _ => (0, 0),
    };
    let mtime = shared.mtime;
    let layer = tokio::task::block_in_place(|| make_layer(&app_entries, mtime, &owner, cache))?;
    layers.push(ImageLayer {
        layer,
        created_by: format!("gradient: {} {}", shared.name, shared.version),
    });

    let mut env = vec![
        format!("PATH={PATH}"),
        "LANG=C.UTF-8".to_string(),
        "PYTHONUNBUFFERED=1".to_string(),
    ];
    env.extend(settings.env());
    let workdir = match (&settings.workdir, &base) {
        (Some(dir), _) => dir.get_ref().clone(),
        (None, None) => format!("/home/{DEFAULT_USER}"),
        (None, Some(base)) => base.config["config"]["WorkingDir"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or("/")
            .to_string(),
    };
    Ok(ImageSpec {
        base_config: base.map(|b| b.config.clone()),
        layers,
        run: RunConfig {
            entrypoint: settings
                .entrypoint()
                .or_else(|| {
                    let default = entry.default.as_ref()?;
                    Some(vec![format!("/{}/{}", placement.bin, default)])
                })
                // Several scripts and no default: none hides the others, each runs by
                // name on PATH (`docker run IMAGE SCRIPT ARGS`).
                .unwrap_or_default(),
            cmd: settings.cmd().unwrap_or_default(),
            env,
            user: shared.user.to_string(),
            workdir,
            ports: settings.ports(),
            labels: labels(&cx.project, app.metadata()),
        },
        created: gradient_archive::rfc3339(mtime),
    })
}

/// The scratch base's layer (a C library, /etc, the default user), from the cache when
/// these glibc files made it before. `foreign`: the platform's, when not the host's.
fn scratch_layer(
    cache: &Path,
    glibc: &[(String, PathBuf)],
    foreign: Option<&gradient_core::TargetSystem>,
) -> Result<Layer, OciError> {
    let recipe = match foreign {
        None => scratch_recipe(),
        Some(target) => target_scratch_recipe(target, glibc),
    };
    layer_by_recipe(recipe.as_deref(), cache, || {
        let entries = gradient_sandbox::scratch_base(glibc)?;
        make_layer(
            &entries,
            FALLBACK_EPOCH,
            &gradient_sandbox::scratch_owner,
            cache,
        )
    })
}

/// A foreign platform's scratch base recipe: its platform and its own glibc files' stamps,
/// so that it never shares a cache entry with the host's.
fn target_scratch_recipe(
    target: &gradient_core::TargetSystem,
    glibc: &[(String, PathBuf)],
) -> Option<String> {
    let locale = stamp(Path::new(gradient_sandbox::HOST_LOCALE)).unwrap_or_default();
    let stamps = glibc
        .iter()
        .map(|(_, path)| stamp(path))
        .collect::<Option<Vec<_>>>()?
        .join("\n");
    Some(format!(
        "scratch base 2\nplatform {}\n{stamps}\n{locale}",
        target.platform.oci()
    ))
}

/// The runtime bundle's layer under [`content::RUNTIME_PREFIX`], from the cache when this
/// bundle's layer was made before. Its times are fixed, as the bundle is shared by every
/// app: the same layer for all.
fn runtime_layer(runtime: &RuntimeFiles, cache: &Path) -> Result<Layer, OciError> {
    layer_by_recipe(runtime_recipe(runtime).as_deref(), cache, || {
        let entries = content::runtime(&runtime.dir)?;
        make_layer(&entries, FALLBACK_EPOCH, &|_| (0, 0), cache)
    })
}

fn scratch_recipe() -> Option<String> {
    // 2: carries the C.UTF-8 locale.
    let locale = stamp(Path::new(gradient_sandbox::HOST_LOCALE)).unwrap_or_default();
    glibc_stamps().map(|stamps| format!("scratch base 2\n{stamps}\n{locale}"))
}

fn runtime_recipe(runtime: &RuntimeFiles) -> Option<String> {
    stamp(&runtime.dir).map(|bundle| format!("runtime\n{bundle}\n{}", content::RUNTIME_PREFIX))
}

/// The layer `recipe` made before, or the one `make` makes now (noted under `recipe`).
fn layer_by_recipe(
    recipe: Option<&str>,
    cache: &Path,
    make: impl FnOnce() -> Result<Layer, OciError>,
) -> Result<Layer, OciError> {
    if let Some(layer) = recipe.and_then(|r| from_recipe(r, cache)) {
        return Ok(layer);
    }
    let layer = make()?;
    if let Some(recipe) = recipe {
        remember_recipe(recipe, &layer, cache);
    }
    Ok(layer)
}

/// [`Backend::prepare`] of both tiers: on a scratch base, the base's and the runtime's
/// layers, compressed while the wheel builds (the tier that comes second finds them made).
async fn prepare_base_layers(
    project: &Project,
    runtime: &RuntimeFiles,
    cache: &Path,
) -> Option<String> {
    let scratch = matches!(project.config.container.base(), BaseImage::Scratch);
    let known = |recipe: Option<String>| recipe.is_some_and(|r| recipe_known(&r, cache));
    if !scratch || known(runtime_recipe(runtime)) && known(scratch_recipe()) {
        return None;
    }
    let (runtime, cache) = (runtime.clone(), cache.to_path_buf());
    let size = tokio::task::spawn_blocking(move || {
        let glibc = gradient_python::runtime::glibc_files();
        Ok::<_, OciError>(
            scratch_layer(&cache, &glibc, None)?.size + runtime_layer(&runtime, &cache)?.size,
        )
    })
    .await
    .ok()?
    .ok()?;
    Some(format!(
        "compressed the base and runtime layers ({:.1} MiB)",
        size as f64 / (1 << 20) as f64
    ))
}

/// `org.opencontainers.image.*` labels from the project's metadata.
fn labels(
    project: &Project,
    metadata: &gradient_wheel::metadata::CoreMetadata,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        labels.insert(format!("org.opencontainers.image.{key}"), value.to_string());
    };
    put("title", &metadata.name);
    put("version", &metadata.version);
    if let Some(summary) = metadata.summary.as_deref().filter(|s| !s.is_empty()) {
        put("description", summary);
    }
    // A license expression, not a license's whole text.
    if let Some(license) = metadata.license_name() {
        put("licenses", license);
    }
    let source = [
        "Source",
        "Repository",
        "Source Code",
        "Homepage",
        "homepage",
    ]
    .iter()
    .find_map(|key| project.urls.get(*key))
    .or_else(|| project.urls.values().next());
    if let Some(url) = source {
        put("source", url);
    }
    if let Some(revision) = git_revision(&project.root) {
        put("revision", &revision);
    }
    labels
}

/// The commit the project folder is at, when it is in a git work tree.
fn git_revision(root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let revision = text.trim();
    (output.status.success() && revision.len() == 40).then(|| revision.to_string())
}
