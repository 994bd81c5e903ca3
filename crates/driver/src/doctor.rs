//! `gradient doctor`: what this host can build, and why not.

use crate::registry;
use gradient_core::{Host, Tier};
use gradient_python::{cache_root, Installer};

/// The state of one tier on this host.
#[derive(Clone, Debug)]
pub enum TierStatus {
    Ready,
    Unavailable(gradient_core::Unavailable),
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
    /// The Linux platforms gradient knows, and what this host can do for each.
    pub platforms: Vec<PlatformStatus>,
}

/// What this host can do for one platform.
#[derive(Clone, Debug)]
pub struct PlatformStatus {
    /// `linux/amd64`, `linux/arm64`.
    pub platform: String,
    /// Whether this host builds its artifacts: the host's own platform, or another one whose
    /// programs run here (its interpreter byte-compiles its standard library) and whose
    /// Debian packages apt-get can fetch.
    pub builds: bool,
    /// How its programs run here (natively, under emulation), or why they cannot: what a
    /// smoke test of its artifacts would need.
    pub runs: Result<String, String>,
}

/// Each known platform: built here or not, and whether its programs run here.
fn platforms() -> Vec<PlatformStatus> {
    gradient_core::Platform::ALL
        .iter()
        .map(|platform| {
            let machine = platform.machine();
            let native = platform.is_host();
            // The same question a build asks before it plans a foreign tier.
            let runs = match platform.runnable_here() {
                Ok(()) if native => Ok("natively".to_string()),
                Ok(()) => Ok(format!("under emulation (binfmt_misc: qemu-{machine})")),
                Err(why) => Err(why),
            };
            let apt = std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join("apt-get").is_file())
            });
            PlatformStatus {
                platform: platform.to_string(),
                builds: native || (runs.is_ok() && apt),
                runs,
            }
        })
        .collect()
}

/// Look at the host, as a build's plan does (`crate::plan::survey_host`), with the
/// container engine always asked.
pub async fn diagnose(python: Option<&str>) -> Diagnosis {
    let cache = cache_root();
    let survey = crate::plan::survey_host(python, &cache, true).await;
    let installer = survey.installer;
    let host = Host {
        interpreter: survey.interpreter.as_ref().ok().cloned(),
        container_engine: survey.container_engine,
    };
    let backends = registry::backends(&installer);
    let tiers = Tier::ALL
        .into_iter()
        .map(|tier| {
            let status = match backends.iter().find(|b| b.tier() == tier) {
                None => TierStatus::Planned,
                Some(backend) => match backend.preflight(&host) {
                    Ok(()) => TierStatus::Ready,
                    Err(unavailable) => TierStatus::Unavailable(unavailable),
                },
            };
            (tier, status)
        })
        .collect();
    let found = survey.interpreter;
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
        platforms: platforms(),
    }
}
