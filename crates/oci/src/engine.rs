//! The Docker engine, through bollard: load an image tarball, export a base image, run a
//! container to smoke-test an image. Found through `DOCKER_HOST` or the default socket.
//! bollard sends no API version in its paths, so every request runs at the engine's own.
//!
//! Smoke containers carry the label [`OWNER_LABEL`], naming the gradient process that runs
//! them. A container is removed when its run is done with it, also when the run is dropped
//! half-way (a signal, `--fail-fast`); one that a killed run left is removed by the next
//! smoke test on the same machine, once that process is gone.

use crate::OciError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ImportImageOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::path::Path;
use std::time::Instant;

/// Where the engine is expected, for messages.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// A connected engine and its version.
pub struct Engine {
    docker: Docker,
    pub version: String,
    /// The platform the containers this value creates run as (`linux/arm64`, as
    /// `docker run --platform` asks): `None` for the engine's own.
    platform: Option<String>,
}

/// An image the engine holds.
#[derive(Clone, Debug)]
pub struct HeldImage {
    pub id: String,
    /// Diff IDs, base first.
    pub layers: Vec<String>,
}

/// `archive` (a docker-archive tarball) without the files of its leading layers that begin
/// one of the `known` layer lists, and how many layers were left out; `None` when nothing
/// can be left out or the archive is not one gradient wrote.
fn without_known_layers(archive: &[u8], known: &[&[String]]) -> Option<(Vec<u8>, usize)> {
    // Each entry's header and where its data lies in `archive`: nothing is copied.
    let mut files: Vec<(tar::Header, std::ops::Range<usize>)> = Vec::new();
    for entry in tar::Archive::new(archive).entries().ok()? {
        let entry = entry.ok()?;
        let start = usize::try_from(entry.raw_file_position()).ok()?;
        let end = start.checked_add(usize::try_from(entry.size()).ok()?)?;
        archive.get(start..end)?;
        files.push((entry.header().clone(), start..end));
    }
    let find = |name: &str| {
        files
            .iter()
            .find(|(header, _)| header.path().is_ok_and(|p| p.as_os_str() == name))
            .map(|(_, range)| &archive[range.clone()])
    };
    let manifest: serde_json::Value = serde_json::from_slice(find("manifest.json")?).ok()?;
    let layer_files: Vec<&str> = manifest[0]["Layers"]
        .as_array()?
        .iter()
        .map(|v| v.as_str())
        .collect::<Option<_>>()?;
    let config: serde_json::Value =
        serde_json::from_slice(find(manifest[0]["Config"].as_str()?)?).ok()?;
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()?
        .iter()
        .map(|v| v.as_str())
        .collect::<Option<_>>()?;
    if diff_ids.len() != layer_files.len() {
        return None;
    }
    let shared = known
        .iter()
        .map(|layers| {
            diff_ids
                .iter()
                .zip(layers.iter())
                .take_while(|(ours, theirs)| **ours == theirs.as_str())
                .count()
        })
        .max()
        .unwrap_or(0);
    if shared == 0 {
        return None;
    }
    // A file stays when a layer above the shared ones needs it too.
    let left_out: Vec<&str> = layer_files[..shared]
        .iter()
        .filter(|file| !layer_files[shared..].contains(file))
        .copied()
        .collect();
    let mut thin = tar::Builder::new(Vec::new());
    for (header, range) in &files {
        if header
            .path()
            .is_ok_and(|p| left_out.iter().any(|f| p.as_os_str() == *f))
        {
            continue;
        }
        thin.append(header, &archive[range.clone()]).ok()?;
    }
    Some((thin.into_inner().ok()?, shared))
}

/// What a container run gave.
#[derive(Clone, Debug)]
pub struct ContainerRun {
    pub exit_code: i64,
    /// Its standard output and error, as they came.
    pub output: String,
    /// Its standard output alone.
    pub stdout: String,
    /// From start to exit.
    pub seconds: f64,
}

/// A served smoke container: asked over HTTP, then stopped and removed.
pub struct Serving<'a> {
    engine: &'a Engine,
    id: String,
    removal: Option<Removal>,
}

impl Serving<'_> {
    /// Why the container is not running any more, if it is not.
    pub async fn ended(&self) -> Option<String> {
        let inspected = self
            .engine
            .docker
            .inspect_container(
                &self.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()?;
        let state = inspected.state?;
        if state.running == Some(true) {
            return None;
        }
        Some(format!("exit code {}", state.exit_code.unwrap_or_default()))
    }

    /// Stop and remove the container; what it printed.
    pub async fn stop(mut self) -> String {
        let docker = &self.engine.docker;
        let mut logs = docker.logs(
            &self.id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut output = String::new();
        while let Some(Ok(line)) = logs.next().await {
            output.push_str(&line.to_string());
        }
        let _ = docker.remove_container(&self.id, Some(forced())).await;
        if let Some(removal) = self.removal.take() {
            removal.disarm();
        }
        output
    }
}

/// Write `input` to a container's standard input and close it.
async fn write_and_close(
    mut writer: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    input: &[u8],
) -> Result<(), OciError> {
    use tokio::io::AsyncWriteExt;
    let written = async {
        writer.write_all(input).await?;
        writer.shutdown().await
    };
    written.await.map_err(|e| OciError::EngineRejected {
        action: "write the container's input",
        message: e.to_string(),
    })
}

/// A smoke container's configuration: its image, entrypoint (`None`: the image's own)
/// and command.
fn container_body(
    image: &str,
    entrypoint: Option<&[String]>,
    args: &[String],
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: entrypoint.map(<[String]>::to_vec),
        cmd: Some(args.to_vec()),
        ..Default::default()
    }
}

impl Engine {
    /// The engine's version, or why none can be used, for preflight checks and `doctor`.
    pub async fn probe() -> Result<String, gradient_core::Unavailable> {
        match Engine::connect().await {
            Ok(engine) => Ok(engine.version),
            Err(error) => Err(gradient_core::Unavailable::from_error(&error)),
        }
    }

    /// Connect and ask the engine for its version: no engine, or no right to use it, is an
    /// error that says what to do.
    pub async fn connect() -> Result<Engine, OciError> {
        let address = engine_address();
        let unavailable = |reason: String| {
            if reason.contains("ermission denied") {
                OciError::EnginePermission {
                    address: address.clone(),
                }
            } else {
                OciError::NoEngine {
                    address: address.clone(),
                    reason,
                }
            }
        };
        let docker = Docker::connect_with_defaults().map_err(|e| unavailable(chain(&e)))?;
        let version = docker.version().await.map_err(|e| unavailable(chain(&e)))?;
        Ok(Engine {
            docker,
            version: version.version.unwrap_or_else(|| "unknown".into()),
            platform: None,
        })
    }

    /// The same engine, creating its containers for `platform` (an image of another
    /// platform runs under the emulator binfmt_misc registers on the engine's machine).
    pub fn on_platform(&self, platform: gradient_core::Platform) -> Engine {
        Engine {
            docker: self.docker.clone(),
            version: self.version.clone(),
            platform: (!platform.is_host()).then(|| platform.oci().to_string()),
        }
    }

    /// The ID and layers of the image the engine holds under `reference`, if any.
    pub async fn image(&self, reference: &str) -> Option<HeldImage> {
        let inspected = self.docker.inspect_image(reference).await.ok()?;
        Some(HeldImage {
            id: inspected.id?,
            layers: inspected
                .root_fs
                .and_then(|root| root.layers)
                .unwrap_or_default(),
        })
    }

    /// Load an image tarball gradient wrote, sending only what the engine lacks. A layer
    /// that, with every layer below it, begins one of the `held` images is already in the
    /// engine's layer store, and Docker's classic image store (engine 20.10's) looks a layer
    /// up by its chain ID before it opens the layer's file: such layers are left out of the
    /// upload, which after an app change is everything but the app layer. Only an engine on
    /// the classic store is sent a shortened archive; one that refuses it (a layer removed
    /// meanwhile) is sent the whole tarball next. Returns what the engine said and how many
    /// layers were left out.
    pub async fn load(
        &self,
        tarball: &Path,
        held: &[HeldImage],
    ) -> Result<(String, usize), OciError> {
        let bytes = tokio::fs::read(tarball)
            .await
            .map_err(|source| OciError::Io {
                action: "read",
                path: tarball.to_path_buf(),
                source,
            })?;
        self.load_archive(bytes, held).await
    }

    /// [`Engine::load`] of a docker-archive already in memory.
    pub async fn load_archive(
        &self,
        bytes: Vec<u8>,
        held: &[HeldImage],
    ) -> Result<(String, usize), OciError> {
        let known: Vec<&[String]> = held.iter().map(|image| image.layers.as_slice()).collect();
        let short = if !known.is_empty() && self.classic_image_store().await {
            without_known_layers(&bytes, &known)
        } else {
            None
        };
        if let Some((thin, left_out)) = short {
            match self.send(thin).await {
                Ok(said) => return Ok((said, left_out)),
                Err(error) => tracing::debug!(
                    "the engine refused the image without the layers it holds ({error}); sending all of it"
                ),
            }
        }
        Ok((self.send(bytes).await?, 0))
    }

    /// Whether the engine keeps images in Docker's classic store, which skips the file of a
    /// layer it already holds. An engine on containerd's image store (it says so in its
    /// storage driver's status) needs every blob, so it is always sent the whole tarball.
    async fn classic_image_store(&self) -> bool {
        match self.docker.info().await {
            Ok(info) => !info
                .driver_status
                .unwrap_or_default()
                .iter()
                .flatten()
                .any(|value| value.contains("containerd.snapshotter")),
            Err(_) => false,
        }
    }

    /// Upload a docker-archive tarball to the engine's load endpoint.
    async fn send(&self, bytes: Vec<u8>) -> Result<String, OciError> {
        let options = ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut stream = self
            .docker
            .import_image(options, bollard::body_full(bytes.into()), None);
        let mut said = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => said.extend(info.stream.or(info.status)),
                Err(error) => {
                    return Err(OciError::EngineRejected {
                        action: "load the image",
                        message: chain(&error),
                    })
                }
            }
        }
        Ok(said.concat().trim().to_string())
    }

    /// Save an image of the engine (`NAME:TAG`) as a docker-archive tarball at `into`.
    pub async fn export(&self, image: &str, into: &Path) -> Result<(), OciError> {
        if let Err(error) = self.docker.inspect_image(image).await {
            return Err(match error {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => OciError::BaseNotFound {
                    image: image.to_string(),
                },
                other => OciError::EngineRejected {
                    action: "inspect the base image",
                    message: chain(&other),
                },
            });
        }
        let mut file = tokio::fs::File::create(into)
            .await
            .map_err(|source| OciError::Io {
                action: "create",
                path: into.to_path_buf(),
                source,
            })?;
        let mut stream = self.docker.export_image(image);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| OciError::EngineRejected {
                action: "export the base image",
                message: chain(&e),
            })?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|source| OciError::Io {
                    action: "write",
                    path: into.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Run `args` in a new container of `image` without a network (through `entrypoint`,
    /// or the image's own), with `stdin` (when given) written to its standard input, collect
    /// its output and exit code, and remove it.
    pub async fn run(
        &self,
        image: &str,
        entrypoint: Option<&[String]>,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<ContainerRun, OciError> {
        let mut body = container_body(image, entrypoint, args);
        body.network_disabled = Some(true);
        body.host_config = Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        });
        if stdin.is_some() {
            body.open_stdin = Some(true);
            body.stdin_once = Some(true);
            body.attach_stdin = Some(true);
        }
        let (id, removal) = self.create(body).await?;
        // At most SMOKE_TIMEOUT; dropped on the timeout, the run's container is removed by
        // its guard. The input is written while the container runs, never before it starts:
        // more than the pipes hold would wait for a reader that has not started.
        let outcome = tokio::time::timeout(gradient_python::smoke::SMOKE_TIMEOUT, async {
            let input = match stdin {
                Some(input) => Some((self.attach_input(&id).await?, input)),
                None => None,
            };
            let send = async {
                match input {
                    Some((writer, input)) => write_and_close(writer, input).await,
                    None => Ok(()),
                }
            };
            let (sent, run) = tokio::join!(send, self.start_and_wait(&id));
            sent?;
            run
        })
        .await
        .unwrap_or_else(|_| {
            Err(OciError::EngineRejected {
                action: "run the container",
                message: format!(
                    "it did not finish within {}s",
                    gradient_python::smoke::SMOKE_TIMEOUT.as_secs()
                ),
            })
        });
        let _ = self.docker.remove_container(&id, Some(forced())).await;
        removal.disarm();
        outcome
    }

    /// Start a container of `image` running `args` (through `entrypoint`, or the image's
    /// own) on the default network, its `port` published on 127.0.0.1 at the same number:
    /// a server for a smoke test to ask. Removed when the returned guard is dropped.
    pub async fn serve(
        &self,
        image: &str,
        entrypoint: Option<&[String]>,
        args: &[String],
        port: u16,
    ) -> Result<Serving<'_>, OciError> {
        let mut body = container_body(image, entrypoint, args);
        let exposed = format!("{port}/tcp");
        body.exposed_ports = Some(vec![exposed.clone()]);
        body.host_config = Some(HostConfig {
            port_bindings: Some(
                [(
                    exposed,
                    Some(vec![bollard::models::PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(port.to_string()),
                    }]),
                )]
                .into(),
            ),
            ..Default::default()
        });
        let (id, removal) = self.create(body).await?;
        let serving = Serving {
            engine: self,
            id,
            removal: Some(removal),
        };
        self.docker
            .start_container(
                &serving.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| OciError::EngineRejected {
                action: "start the container",
                message: chain(&e),
            })?;
        Ok(serving)
    }

    /// Create a smoke container, named and labelled with its owner before it exists, so that
    /// it can be removed even if this run is dropped while the engine creates it.
    async fn create(&self, mut body: ContainerCreateBody) -> Result<(String, Removal), OciError> {
        self.remove_abandoned().await;
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "gradient-smoke-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let removal = Removal::armed(name.clone());
        body.labels = Some([(OWNER_LABEL.to_string(), Owner::this_process().label())].into());
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    platform: self.platform.clone().unwrap_or_default(),
                }),
                body,
            )
            .await
            .map_err(|e| OciError::EngineRejected {
                action: "create a container",
                message: chain(&e),
            })?;
        Ok((created.id, removal))
    }

    /// Attach to a created container's standard input, before it starts.
    async fn attach_input(
        &self,
        id: &str,
    ) -> Result<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>, OciError> {
        let attached = self
            .docker
            .attach_container(
                id,
                Some(bollard::query_parameters::AttachContainerOptions {
                    stdin: true,
                    stream: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| OciError::EngineRejected {
                action: "attach to the container's input",
                message: chain(&e),
            })?;
        Ok(attached.input)
    }

    /// Remove the smoke containers that runs on this machine left when they were killed:
    /// those whose owning process is gone. Others' are left alone.
    async fn remove_abandoned(&self) {
        let options = ListContainersOptions {
            all: true,
            filters: Some([("label".to_string(), vec![OWNER_LABEL.to_string()])].into()),
            ..Default::default()
        };
        let Ok(containers) = self.docker.list_containers(Some(options)).await else {
            return;
        };
        let this = Owner::this_process();
        for container in containers {
            let owner = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(OWNER_LABEL))
                .and_then(|label| Owner::parse(label));
            if let (Some(id), Some(owner)) = (container.id, owner) {
                if this.outlived(&owner) {
                    tracing::info!("removing smoke container {id}, left by a run that was killed");
                    let _ = self.docker.remove_container(&id, Some(forced())).await;
                }
            }
        }
    }

    async fn start_and_wait(&self, id: &str) -> Result<ContainerRun, OciError> {
        let started = Instant::now();
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| OciError::EngineRejected {
                action: "start the container",
                message: chain(&e),
            })?;
        let mut wait = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        let mut exit_code = 0;
        while let Some(item) = wait.next().await {
            match item {
                Ok(response) => exit_code = response.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                    exit_code = code
                }
                Err(error) => {
                    return Err(OciError::EngineRejected {
                        action: "wait for the container",
                        message: chain(&error),
                    })
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut logs = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut output = String::new();
        let mut stdout = String::new();
        while let Some(Ok(line)) = logs.next().await {
            if let bollard::container::LogOutput::StdOut { message } = &line {
                stdout.push_str(&String::from_utf8_lossy(message));
            }
            output.push_str(&line.to_string());
        }
        Ok(ContainerRun {
            exit_code,
            output,
            stdout,
            seconds,
        })
    }
}

/// The label of a smoke container: its owner, `BOOT_ID/PID_NAMESPACE/PID/START_TIME`.
pub const OWNER_LABEL: &str = "org.gradient.smoke.owner";

/// The gradient process that owns a smoke container: its pid, told apart from a later
/// process with the same pid by its start time, on one boot of one machine and in one pid
/// namespace (only there can the pid be looked up).
#[derive(Clone, Debug, PartialEq)]
struct Owner {
    boot: String,
    namespace: String,
    pid: u32,
    started: String,
}

impl Owner {
    fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .unwrap_or_default()
                .trim()
                .to_string(),
            namespace: std::fs::read_link("/proc/self/ns/pid")
                .map(|link| link.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid,
            started: start_time(pid).unwrap_or_default(),
        }
    }

    fn label(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.boot, self.namespace, self.pid, self.started
        )
    }

    fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.split('/');
        let owner = Owner {
            boot: parts.next()?.to_string(),
            namespace: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            started: parts.next()?.to_string(),
        };
        parts.next().is_none().then_some(owner)
    }

    /// Whether `other` is a process of this boot and pid namespace that has ended.
    fn outlived(&self, other: &Owner) -> bool {
        !self.boot.is_empty()
            && !self.namespace.is_empty()
            && other.boot == self.boot
            && other.namespace == self.namespace
            && start_time(other.pid).as_deref() != Some(other.started.as_str())
    }
}

/// When process `pid` started (field 22 of `/proc/PID/stat`, in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces: count fields after its closing one.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

fn forced() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
    }
}

/// Removes a container when dropped while armed: a run dropped half-way (on a signal, or
/// by `--fail-fast`) does not leave its smoke container behind. Drop cannot await, and the
/// run's async runtime may be shutting down, so the removal runs on a thread of its own
/// with a runtime and an engine connection of its own, waited for (at most ten seconds).
struct Removal {
    container: Option<String>,
}

impl Removal {
    fn armed(container: String) -> Removal {
        Removal {
            container: Some(container),
        }
    }

    fn disarm(mut self) {
        self.container = None;
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        let removing = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(docker) = Docker::connect_with_defaults() else {
                    return;
                };
                let removed = docker.remove_container(&container, Some(forced()));
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), removed).await;
            });
        });
        let _ = removing.join();
    }
}

/// An engine error and its causes on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker-archive with one layer file per entry of `layers` (file, diff ID).
    fn archive(layers: &[(&str, &str)]) -> Vec<u8> {
        let manifest = serde_json::json!([{
            "Config": "config.json",
            "RepoTags": ["app:1"],
            "Layers": layers.iter().map(|(file, _)| *file).collect::<Vec<_>>(),
        }]);
        let config = serde_json::json!({
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(_, id)| *id).collect::<Vec<_>>()},
        });
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        };
        add("manifest.json", manifest.to_string().as_bytes());
        add("config.json", config.to_string().as_bytes());
        let mut files: Vec<&str> = layers.iter().map(|(file, _)| *file).collect();
        files.sort();
        files.dedup();
        for file in files {
            add(file, file.as_bytes());
        }
        builder.into_inner().unwrap()
    }

    fn names(archive: &[u8]) -> Vec<String> {
        tar::Archive::new(archive)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_container_is_abandoned_only_when_its_owner_on_this_machine_has_ended() {
        let this = Owner::this_process();
        assert_eq!(Owner::parse(&this.label()), Some(this.clone()));
        assert!(!this.outlived(&this), "a live process");
        // The same pid, but started at another time: an earlier process, now gone.
        let earlier = Owner {
            started: "1".into(),
            ..this.clone()
        };
        assert!(this.outlived(&earlier));
        let gone = Owner {
            pid: u32::MAX,
            ..this.clone()
        };
        assert!(this.outlived(&gone));
        // Another machine's, or another pid namespace's: not ours to judge.
        for other in [
            Owner {
                boot: "another-boot".into(),
                ..gone.clone()
            },
            Owner {
                namespace: "pid:[1]".into(),
                ..gone.clone()
            },
        ] {
            assert!(!this.outlived(&other));
        }
        assert_eq!(Owner::parse("a/b/not-a-pid/1"), None);
    }

    #[test]
    fn the_layers_an_engine_holds_below_the_first_difference_are_left_out() {
        let full = archive(&[("l/base", "d1"), ("l/runtime", "d2"), ("l/app", "d3")]);
        let held = ids(&["d1", "d2", "old-app"]);
        let (thin, left_out) = without_known_layers(&full, &[&held]).unwrap();
        assert_eq!(left_out, 2);
        assert_eq!(names(&thin), ["manifest.json", "config.json", "l/app"]);

        // The longest shared start among the held images counts.
        let shorter = ids(&["d1"]);
        let (_, left_out) = without_known_layers(&full, &[&shorter, &held]).unwrap();
        assert_eq!(left_out, 2);
        // A layer the engine holds above a different one is not known to be there.
        let other_base = ids(&["other", "d2", "d3"]);
        assert!(without_known_layers(&full, &[&other_base]).is_none());
        assert!(without_known_layers(&full, &[]).is_none());
    }

    #[test]
    fn a_file_also_used_by_a_layer_that_is_sent_stays() {
        let full = archive(&[("l/same", "d1"), ("l/mid", "d2"), ("l/same", "d1")]);
        let held = ids(&["d1", "d2"]);
        let (thin, left_out) = without_known_layers(&full, &[&held]).unwrap();
        assert_eq!(left_out, 2);
        assert_eq!(names(&thin), ["manifest.json", "config.json", "l/same"]);
    }

    #[test]
    fn an_archive_that_is_not_a_docker_archive_is_sent_whole() {
        assert!(without_known_layers(b"not a tar", &[&ids(&["d1"])]).is_none());
        let no_manifest = {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_cksum();
            builder.append_data(&mut header, "x", &b"x"[..]).unwrap();
            builder.into_inner().unwrap()
        };
        assert!(without_known_layers(&no_manifest, &[&ids(&["d1"])]).is_none());
    }
}
