//! The Docker engine, through bollard: load an image tarball, export a base image, run a
//! container to smoke-test an image. Found through `DOCKER_HOST` or the default socket.
//! bollard sends no API version in its paths, so every request runs at the engine's own.

use crate::OciError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    ImportImageOptions, LogsOptions, RemoveContainerOptions, WaitContainerOptions,
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
}

/// What a container run gave.
#[derive(Clone, Debug)]
pub struct ContainerRun {
    pub exit_code: i64,
    pub output: String,
    /// From start to exit.
    pub seconds: f64,
}

impl Engine {
    /// The engine's version, or why none can be used, for preflight checks and `doctor`.
    pub async fn probe() -> Result<String, String> {
        match Engine::connect().await {
            Ok(engine) => Ok(engine.version),
            Err(error) => Err(error.to_string()),
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
        })
    }

    /// The ID of the image `reference` names in the engine, if there is one.
    pub async fn image_id(&self, reference: &str) -> Option<String> {
        self.docker.inspect_image(reference).await.ok()?.id
    }

    /// Load an image tarball (docker-archive or OCI layout) into the engine.
    pub async fn load(&self, tarball: &Path) -> Result<String, OciError> {
        let bytes = tokio::fs::read(tarball)
            .await
            .map_err(|source| OciError::Io {
                action: "read",
                path: tarball.to_path_buf(),
                source,
            })?;
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
    /// or the image's own), collect its output and exit code, and remove it.
    pub async fn run(
        &self,
        image: &str,
        entrypoint: Option<&[String]>,
        args: &[String],
    ) -> Result<ContainerRun, OciError> {
        let rejected = |action| {
            move |e: bollard::errors::Error| OciError::EngineRejected {
                action,
                message: chain(&e),
            }
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: entrypoint.map(<[String]>::to_vec),
            cmd: Some(args.to_vec()),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(rejected("create a container"))?;
        let id = created.id;
        let outcome = self.start_and_wait(&id).await;
        let _ = self
            .docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        outcome
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
        while let Some(Ok(line)) = logs.next().await {
            output.push_str(&line.to_string());
        }
        Ok(ContainerRun {
            exit_code,
            output,
            seconds,
        })
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
