//! Building the sdist and the wheel through the project's PEP 517 backend.

use crate::metadata::{
    check_against_project, inspect_sdist, inspect_wheel, CoreMetadata, WheelInfo,
};
use crate::{cache, WheelError};
use gradient_archive::{extract_tar_gz, normalise_tar_gz, normalise_zip, ZipOrder};
use gradient_core::{AppIdentity, InterpreterFacts, Project, SourceDate};
use gradient_python::{BuildEnv, HookRunner, HookSettings, Installer};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the wheel is built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WheelRoute {
    /// From the unpacked sdist, as `python -m build` does: proves the sdist is complete.
    #[default]
    ViaSdist,
    /// Straight from the source tree.
    Direct,
}

/// What to build, and with what.
pub struct BuildRequest<'a> {
    pub project: &'a Project,
    pub python: &'a InterpreterFacts,
    pub installer: &'a Installer,
    pub cache_root: &'a Path,
    /// A scratch folder; the finished files land in `work_dir/dists`.
    pub work_dir: &'a Path,
    pub source_date: SourceDate,
    pub route: WheelRoute,
    pub want_sdist: bool,
    pub want_wheel: bool,
    /// Reuse (and fill) the cache of built distributions.
    pub use_cache: bool,
    /// The output folder, left out of the source tree's digest when it lies inside it.
    pub out_dir: Option<&'a Path>,
    /// How long one hook may run before it is stopped (`None`: no limit).
    pub hook_timeout: Option<std::time::Duration>,
}

/// The built, normalised and checked distributions.
#[derive(Clone, Debug)]
pub struct Distributions {
    pub sdist: Option<PathBuf>,
    pub sdist_metadata: Option<CoreMetadata>,
    pub wheel: Option<(PathBuf, WheelInfo)>,
    /// Seconds spent on each (the build environment counts towards the first).
    pub sdist_seconds: f64,
    pub wheel_seconds: f64,
    /// Whether the build environment came from the cache.
    pub env_reused: bool,
    /// Whether the files themselves came from the cache (no hook ran).
    pub cached: bool,
    /// With [`WheelRoute::ViaSdist`]: whether a wheel built straight from the source tree is
    /// byte-identical to the one built from the sdist (`Err` lists the differences).
    pub sdist_matches_source: Option<Result<Option<String>, String>>,
}

/// What the cache's identical earlier build of `request` says about the app, when it holds
/// one (for `plan`): the files' names, and the name and version the wheel's name carries.
pub async fn cached_distributions(request: &BuildRequest<'_>) -> Option<AppIdentity> {
    let key = cache::key(request, request.out_dir).await?;
    let (sdist_file, wheel_file) = cache::names(request.cache_root, &key)?;
    // `NAME-VERSION-TAGS.whl`, NAME with `_` for separators; or `NAME-VERSION.tar.gz`,
    // where an older backend may have kept `-` in NAME.
    let (name, version) = match (&wheel_file, &sdist_file) {
        (Some(wheel), _) => {
            let mut parts = wheel.split('-');
            (parts.next()?, parts.next()?)
        }
        (None, Some(sdist)) => sdist.strip_suffix(".tar.gz")?.rsplit_once('-')?,
        (None, None) => return None,
    };
    let (name, version) = (name.to_string(), version.to_string());
    Some(AppIdentity {
        name,
        version: Some(version),
        sdist_file,
        wheel_file,
    })
}

/// Build what `request` asks for, or reuse the cached files of an identical earlier build.
pub async fn build_distributions(request: BuildRequest<'_>) -> Result<Distributions, WheelError> {
    let started = Instant::now();
    let key = match request.use_cache {
        true => cache::key(&request, request.out_dir).await,
        false => None,
    };
    let out = request.work_dir.join("dists");
    std::fs::create_dir_all(&out).map_err(|source| WheelError::Io {
        action: "create",
        path: out.clone(),
        source,
    })?;
    if let Some(key) = &key {
        match cache::lookup(request.cache_root, key, &out) {
            cache::Lookup::Hit(record, sdist, wheel) => {
                let sdist_metadata = match &sdist {
                    Some(path) => Some(inspect_sdist(path)?),
                    None => None,
                };
                let wheel = match wheel {
                    Some(path) => {
                        let info = inspect_wheel(&path)?;
                        Some((path, info))
                    }
                    None => None,
                };
                let seconds = started.elapsed().as_secs_f64();
                return Ok(Distributions {
                    sdist,
                    sdist_metadata,
                    wheel,
                    sdist_seconds: seconds,
                    wheel_seconds: seconds,
                    env_reused: true,
                    cached: true,
                    sdist_matches_source: record.sdist_matches_source,
                });
            }
            cache::Lookup::Corrupt(why) => {
                tracing::warn!(
                    "the cached build of {} is corrupt ({why}); rebuilding it",
                    request.project.display_name()
                );
            }
            cache::Lookup::Miss => {}
        }
    }
    let built = build_with_hooks(&request, started).await?;
    if let Some(key) = &key {
        cache::store(
            request.cache_root,
            key,
            built.sdist.as_deref(),
            built.wheel.as_ref().map(|(path, _)| path.as_path()),
            &built.sdist_matches_source,
        );
    }
    Ok(built)
}

/// Run the hooks. The sdist comes first; with [`WheelRoute::ViaSdist`] the wheel is then
/// built from its unpacked copy, in the same backend process.
async fn build_with_hooks(
    request: &BuildRequest<'_>,
    started: Instant,
) -> Result<Distributions, WheelError> {
    let project = request.project;
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WheelError::Io {
            action,
            path,
            source,
        }
    };
    let out = request.work_dir.join("dists");
    let raw = request.work_dir.join("backend-output");
    for dir in [&out, &raw] {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let mut env = BuildEnv::ensure(
        request.python,
        &project.build_system.requires,
        request.installer,
        request.cache_root,
    )
    .await?;
    let epoch = request.source_date.zip_seconds();
    let backend_env: Vec<(OsString, OsString)> = vec![
        ("SOURCE_DATE_EPOCH".into(), epoch.to_string().into()),
        ("PYTHONHASHSEED".into(), "0".into()),
    ];
    let settings = HookSettings {
        timeout: request.hook_timeout,
        cache_root: request.cache_root.to_path_buf(),
    };
    let mut runner = HookRunner::start(
        &env.python,
        &project.root,
        &project.build_system,
        &backend_env,
        &settings,
    )
    .await?;

    let need_sdist =
        request.want_sdist || (request.want_wheel && request.route == WheelRoute::ViaSdist);
    let mut result = Distributions {
        sdist: None,
        sdist_metadata: None,
        wheel: None,
        sdist_seconds: 0.0,
        wheel_seconds: 0.0,
        env_reused: env.reused,
        cached: false,
        sdist_matches_source: None,
    };
    if need_sdist {
        let requires = string_list(
            runner
                .call("get_requires_for_build_sdist", vec![Value::Null])
                .await?,
            "get_requires_for_build_sdist",
        )?;
        env.ensure_extra(&requires, request.installer).await?;
        let name = string(
            runner
                .call("build_sdist", vec![path_value(&raw), Value::Null])
                .await?,
            "build_sdist",
        )?;
        let sdist = out.join(&name);
        normalise_tar_gz(&raw.join(&name), &sdist, request.source_date.seconds)?;
        let metadata = inspect_sdist(&sdist)?;
        check_against_project(&name, &metadata, project)?;
        result.sdist = Some(sdist);
        result.sdist_metadata = Some(metadata);
        result.sdist_seconds = started.elapsed().as_secs_f64();
    }
    if request.want_wheel {
        let wheel_started = Instant::now();
        if let (WheelRoute::ViaSdist, Some(sdist)) = (request.route, &result.sdist) {
            let unpacked = request.work_dir.join("unpacked");
            extract_tar_gz(sdist, &unpacked)?;
            let top = sdist
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".tar.gz"))
                .map(|n| unpacked.join(n))
                .expect("sdist names were checked");
            runner =
                move_runner(runner, &top, &env.python, project, &backend_env, &settings).await?;
        }
        let requires = string_list(
            runner
                .call("get_requires_for_build_wheel", vec![Value::Null])
                .await?,
            "get_requires_for_build_wheel",
        )?;
        env.ensure_extra(&requires, request.installer).await?;
        let wheel_raw = raw.join("wheel");
        std::fs::create_dir_all(&wheel_raw).map_err(io("create", &wheel_raw))?;
        let name = string(
            runner
                .call(
                    "build_wheel",
                    vec![path_value(&wheel_raw), Value::Null, Value::Null],
                )
                .await?,
            "build_wheel",
        )?;
        let wheel = out.join(&name);
        normalise_zip(&wheel_raw.join(&name), &wheel, epoch, ZipOrder::Wheel)?;
        let info = inspect_wheel(&wheel)?;
        check_against_project(&name, &info.metadata, project)?;
        if let Some(sdist_metadata) = &result.sdist_metadata {
            if (
                sdist_metadata.name.as_str(),
                sdist_metadata.version.as_str(),
            ) != (info.metadata.name.as_str(), info.metadata.version.as_str())
            {
                return Err(WheelError::Invalid {
                    file: name,
                    problem: format!(
                        "the wheel is {} {} but the sdist is {} {}",
                        info.metadata.name,
                        info.metadata.version,
                        sdist_metadata.name,
                        sdist_metadata.version
                    ),
                    hint: None,
                });
            }
        }
        if request.route == WheelRoute::ViaSdist && request.want_sdist {
            // For the sdist's smoke test, the wheel is built again from the source tree: if
            // the two differ, the sdist lacks something (a MANIFEST.in omission, typically).
            runner = move_runner(
                runner,
                &project.root,
                &env.python,
                project,
                &backend_env,
                &settings,
            )
            .await?;
            let direct_raw = raw.join("direct");
            let direct_out = request.work_dir.join("direct");
            for dir in [&direct_raw, &direct_out] {
                std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            }
            let direct_name = string(
                runner
                    .call(
                        "build_wheel",
                        vec![path_value(&direct_raw), Value::Null, Value::Null],
                    )
                    .await?,
                "build_wheel",
            )?;
            let direct = direct_out.join(&direct_name);
            normalise_zip(
                &direct_raw.join(&direct_name),
                &direct,
                epoch,
                ZipOrder::Wheel,
            )?;
            result.sdist_matches_source = Some(compare_wheels(&wheel, &direct)?);
        }
        result.wheel = Some((wheel, info));
        result.wheel_seconds = if need_sdist {
            wheel_started.elapsed().as_secs_f64()
        } else {
            started.elapsed().as_secs_f64()
        };
    }
    runner.finish().await;
    Ok(result)
}

/// How the wheel built from the sdist compares with the one built from the source tree:
/// `Ok(None)` byte-identical; `Ok(Some(note))` different only where compiled code records
/// the folder it was built in (the note names those files); `Err` the differences that say
/// the sdist lacks something or builds something else, each with what it means.
fn compare_wheels(
    from_sdist: &Path,
    from_source: &Path,
) -> Result<Result<Option<String>, String>, WheelError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| WheelError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })
    };
    if from_sdist.file_name() == from_source.file_name() && read(from_sdist)? == read(from_source)?
    {
        return Ok(Ok(None));
    }
    let entries = |path: &Path| -> Result<
        std::collections::BTreeMap<String, gradient_archive::EntryKind>,
        WheelError,
    > {
        Ok(gradient_archive::read_zip_entries(path)?
            .into_iter()
            .map(|e| (e.path, e.kind))
            .collect())
    };
    let (a, b) = (entries(from_sdist)?, entries(from_source)?);
    let mut differences: Vec<String> = Vec::new();
    let mut build_paths_only: Vec<String> = Vec::new();
    for (path, kind) in &b {
        match (a.get(path), kind) {
            (None, _) => differences.push(format!(
                "`{path}` is only in the wheel built from the source tree: the sdist lacks a file it is made from (add it to the sdist: MANIFEST.in, or the backend's sdist include settings)"
            )),
            (Some(other), _) if other == kind => {}
            // RECORD lists every file's digest: it differs whenever another file does.
            _ if path.ends_with(".dist-info/RECORD") => {}
            (
                Some(gradient_archive::EntryKind::File(ours)),
                gradient_archive::EntryKind::File(theirs),
            ) => match gradient_python::elf::same_loaded_bytes(ours, theirs) {
                Some(true) => build_paths_only.push(path.clone()),
                Some(false) => differences.push(format!(
                    "`{path}`'s compiled code or data differ: the sdist's sources are not the tree's (a missing or different source or header file)"
                )),
                None => differences.push(format!(
                    "`{path}` differs: the sdist holds another version of the file it comes from"
                )),
            },
            _ => differences.push(format!("`{path}` differs")),
        }
    }
    differences.extend(a.keys().filter(|p| !b.contains_key(*p)).map(|p| {
        format!("`{p}` is only in the wheel built from the sdist: the sdist holds a file the tree does not build")
    }));
    let names = (from_sdist.file_name(), from_source.file_name());
    if names.0 != names.1 {
        differences.push(format!(
            "the file names differ: {} from the sdist, {} from the source tree",
            names.0.unwrap_or_default().to_string_lossy(),
            names.1.unwrap_or_default().to_string_lossy()
        ));
    }
    if !differences.is_empty() {
        return Ok(Err(differences.join("; ")));
    }
    if build_paths_only.is_empty() {
        return Ok(Err(
            "the two wheels hold the same files but are not byte-identical (their entries' attributes differ)".into(),
        ));
    }
    Ok(Ok(Some(format!(
        "the two wheels differ only where compiled code records the folder it was built in (debug info, the build ID): {}; their code and data are the same",
        build_paths_only
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))))
}

/// Point the runner at another source tree. The backend stays imported, which saves most
/// of a build's time; an in-tree backend (`backend-path`) must come from the tree being
/// built, so for those a new runner starts there.
async fn move_runner(
    mut runner: HookRunner,
    dir: &Path,
    python: &Path,
    project: &Project,
    backend_env: &[(OsString, OsString)],
    settings: &HookSettings,
) -> Result<HookRunner, WheelError> {
    if project.build_system.backend_path.is_empty() {
        runner.chdir(dir).await?;
        return Ok(runner);
    }
    runner.finish().await;
    Ok(HookRunner::start(python, dir, &project.build_system, backend_env, settings).await?)
}

fn path_value(path: &Path) -> Value {
    Value::String(path.to_string_lossy().into_owned())
}

fn string(value: Value, hook: &'static str) -> Result<String, WheelError> {
    match value {
        Value::String(s) if !s.contains('/') && !s.is_empty() => Ok(s),
        other => Err(WheelError::BadHookResult {
            hook,
            value: other.to_string(),
            expected: "file name",
        }),
    }
}

fn string_list(value: Value, hook: &'static str) -> Result<Vec<String>, WheelError> {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        other => Err(WheelError::BadHookResult {
            hook,
            value: other.to_string(),
            expected: "list of requirements",
        }),
    }
}
