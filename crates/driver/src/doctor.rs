//! `gradient doctor`: what this host can build, and why not.

use crate::registry;
use gradient_core::{Host, Tier};
use gradient_python::{cache_root, find_interpreter, Installer, PythonRequest};

/// The state of one tier on this host.
#[derive(Clone, Debug)]
pub enum TierStatus {
    Ready,
    Unavailable(String),
    Planned,
}

/// What `doctor` found.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// The build interpreter, or why none was found.
    pub interpreter: Result<String, String>,
    pub installer: String,
    pub cache_root: String,
    pub tiers: Vec<(Tier, TierStatus)>,
}

/// Look at the host.
pub async fn diagnose(python: Option<&str>) -> Diagnosis {
    let cache = cache_root();
    let request = python
        .map(PythonRequest::parse)
        .unwrap_or(PythonRequest::Default);
    let found = find_interpreter(&request, &cache).await;
    let installer = Installer::detect();
    let host = Host {
        interpreter: found.as_ref().ok().cloned().map(std::sync::Arc::new),
        container_engine: Some(gradient_oci::Engine::probe().await),
    };
    let backends = registry::backends(&installer);
    let tiers = Tier::ALL
        .into_iter()
        .map(|tier| {
            let status = match backends.iter().find(|b| b.tier() == tier) {
                None => TierStatus::Planned,
                Some(backend) => match backend.preflight(&host) {
                    Ok(()) => TierStatus::Ready,
                    Err(unavailable) => TierStatus::Unavailable(unavailable.to_string()),
                },
            };
            (tier, status)
        })
        .collect();
    Diagnosis {
        interpreter: found.map(|f| f.to_string()).map_err(|e| {
            gradient_core::render(&e.to_string(), gradient_core::Hint::hint(&e).as_deref())
        }),
        installer: match &installer {
            Installer::Uv(path) => format!("uv ({})", path.display()),
            Installer::Pip if std::env::var("GRADIENT_INSTALLER").is_ok_and(|v| v == "pip") => {
                "pip (forced by GRADIENT_INSTALLER=pip)".to_string()
            }
            Installer::Pip => "pip (uv not found on PATH: builds work, but slower)".to_string(),
        },
        cache_root: cache.display().to_string(),
        tiers,
    }
}
