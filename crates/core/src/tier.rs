//! The gradient itself: every tier, in order, and what each asks of its target machine.
//!
//! [`Tier::ALL`] is the registry a reader learns the whole tool from. Each tier sits on a
//! [`Rung`]: the less a target must provide, the higher the rung. [`TargetNeeds`] is kept
//! as data so that the report and `gradient advise` can reason over it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One packaging tier. The order of the variants is the order of the gradient.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Source distribution: the target builds it, so it needs Python, pip and the backend.
    Sdist,
    /// Wheel: the target installs it with pip into its own Python.
    Wheel,
    /// A single `.pyz` file holding the app and its dependencies: the target needs a Python.
    Zipapp,
    /// A single executable carrying its own CPython: the target needs a libc.
    Frozen,
    /// An OCI image layout tarball, written without a daemon.
    Oci,
    /// The OCI image, loaded into a Docker engine.
    Docker,
    /// A Debian package.
    Deb,
    /// An RPM package.
    Rpm,
}

/// How much a tier asks of the target: the rungs of the packaging gradient, lowest first.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rung {
    /// The target has Python and an installer (pip, uv).
    PythonAndInstaller,
    /// The target has a Python interpreter.
    Python,
    /// The target has a C library (and a kernel) and nothing else.
    Libc,
    /// The target runs a container engine.
    ContainerEngine,
    /// The target has a system package manager.
    PackageManager,
}

/// The Python a target must provide.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonNeed {
    /// A PEP 440 specifier (`>=3.9`), or an exact `X.Y` when the artifact is built for one.
    pub version: Option<String>,
    /// Implementation when it matters (`cpython`).
    pub implementation: Option<String>,
}

/// What the machine that runs an artifact must provide. Data, not prose: `Display` renders
/// it for people, serde for machines.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetNeeds {
    /// A Python interpreter; `None` when the artifact carries its own.
    pub python: Option<PythonNeed>,
    /// An installer (pip or uv) to install the artifact.
    pub installer: bool,
    /// The project's PEP 517 build backend (and a compiler when the project has C code).
    pub build_backend: bool,
    /// A platform tag the artifact is bound to (`linux_x86_64`), when it is not universal.
    pub platform: Option<String>,
    /// The oldest glibc that runs the artifact (`2.17`), when it brings native code.
    pub glibc: Option<String>,
    /// Shared libraries beyond glibc the target's system must provide (`libstdc++.so.6`):
    /// those a manylinux wheel's extension modules link without carrying them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<String>,
    /// A container engine (Docker, Podman, containerd).
    pub container_engine: bool,
    /// A system package manager (`dpkg`, `rpm`).
    pub package_manager: Option<String>,
    /// What the artifact brings along itself, so that the target need not provide it.
    /// Absent in manifests written before gradient recorded it: read as carrying nothing.
    #[serde(default)]
    pub carries: Carries,
}

/// What an artifact carries inside: the facts `gradient advise` and the SBOM decide on,
/// set by each tier's backend.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carries {
    /// The app's locked dependencies: the target fetches none from a package index, so an
    /// offline target runs it.
    pub dependencies: bool,
    /// A CPython interpreter of its own, which runs on the target's C library unless the
    /// artifact carries a userspace too.
    pub cpython: bool,
    /// A whole userspace (a container image's root file system, its C library included).
    pub userspace: bool,
}

impl Carries {
    /// The locked dependencies only (a zipapp).
    pub const DEPENDENCIES: Carries = Carries {
        dependencies: true,
        cpython: false,
        userspace: false,
    };
    /// The dependencies and a CPython that runs on the target's C library (a frozen
    /// executable, a bundled package).
    pub const DEPENDENCIES_AND_CPYTHON: Carries = Carries {
        dependencies: true,
        cpython: true,
        userspace: false,
    };
    /// The dependencies, a CPython and the userspace it runs on (a container image).
    pub const EVERYTHING: Carries = Carries {
        dependencies: true,
        cpython: true,
        userspace: true,
    };

    /// Whether the artifact's CPython runs on the target's own C library, so the target
    /// must have a glibc recent enough for it.
    pub fn cpython_on_the_target_libc(self) -> bool {
        self.cpython && !self.userspace
    }
}

impl fmt::Display for TargetNeeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(python) = &self.python {
            let mut s = match python.implementation.as_deref() {
                Some("cpython") => "CPython".to_string(),
                Some("pypy") => "PyPy".to_string(),
                Some(other) => other.to_string(),
                None => "Python".to_string(),
            };
            if let Some(version) = &python.version {
                s.push(' ');
                s.push_str(version);
            }
            parts.push(s);
        }
        if self.installer {
            parts.push("pip".to_string());
        }
        if self.build_backend {
            parts.push("build backend".to_string());
        }
        if let Some(glibc) = &self.glibc {
            parts.push(format!("glibc >= {glibc}"));
        }
        parts.extend(self.libraries.iter().cloned());
        if let Some(platform) = &self.platform {
            parts.push(platform.clone());
        }
        if self.container_engine {
            parts.push("container engine".to_string());
        }
        if let Some(manager) = &self.package_manager {
            parts.push(manager.clone());
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(" + "))
        }
    }
}

/// A tier name on the command line that names no tier.
#[derive(Debug, thiserror::Error)]
#[error("unknown tier `{name}`")]
pub struct UnknownTier {
    pub name: String,
}

impl crate::Hint for UnknownTier {
    fn hint(&self) -> Option<String> {
        let names: Vec<&str> = Tier::ALL.iter().map(|t| t.name()).collect();
        Some(format!("valid tiers are {}", names.join(", ")))
    }
}

impl Tier {
    /// Every tier, along the gradient: each asks less of its target than the one before.
    pub const ALL: [Tier; 8] = [
        Tier::Sdist,
        Tier::Wheel,
        Tier::Zipapp,
        Tier::Frozen,
        Tier::Oci,
        Tier::Docker,
        Tier::Deb,
        Tier::Rpm,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Sdist => "sdist",
            Tier::Wheel => "wheel",
            Tier::Zipapp => "zipapp",
            Tier::Frozen => "frozen",
            Tier::Oci => "oci",
            Tier::Docker => "docker",
            Tier::Deb => "deb",
            Tier::Rpm => "rpm",
        }
    }

    /// One line on what the artifact is.
    pub fn describe(self) -> &'static str {
        match self {
            Tier::Sdist => "source distribution (.tar.gz), built by the target",
            Tier::Wheel => "wheel (.whl), installed by pip into the target's Python",
            Tier::Zipapp => "single-file zipapp (.pyz) with every dependency inside",
            Tier::Frozen => "single-file executable carrying its own CPython",
            Tier::Oci => "OCI image tarball, built without a daemon",
            Tier::Docker => "the OCI image, loaded into a Docker engine",
            Tier::Deb => "Debian package (.deb) with the runtime bundled",
            Tier::Rpm => "RPM package (.rpm) with the runtime bundled",
        }
    }

    /// The rung of the gradient this tier stands on.
    pub fn rung(self) -> Rung {
        match self {
            Tier::Sdist | Tier::Wheel => Rung::PythonAndInstaller,
            Tier::Zipapp => Rung::Python,
            Tier::Frozen => Rung::Libc,
            Tier::Oci | Tier::Docker => Rung::ContainerEngine,
            Tier::Deb | Tier::Rpm => Rung::PackageManager,
        }
    }

    /// What a target must provide for this tier in general, before a project is known.
    /// Backends refine it with the project's facts (`requires-python`, glibc version).
    pub fn generic_needs(self) -> TargetNeeds {
        let python = |version: Option<&str>| {
            Some(PythonNeed {
                version: version.map(str::to_string),
                implementation: None,
            })
        };
        match self {
            Tier::Sdist => TargetNeeds {
                python: python(None),
                installer: true,
                build_backend: true,
                ..TargetNeeds::default()
            },
            Tier::Wheel => TargetNeeds {
                python: python(None),
                installer: true,
                ..TargetNeeds::default()
            },
            Tier::Zipapp => TargetNeeds {
                python: Some(PythonNeed {
                    version: Some("X.Y of the build".to_string()),
                    implementation: Some("cpython".to_string()),
                }),
                platform: Some("the build's platform, if compiled code is inside".to_string()),
                carries: Carries::DEPENDENCIES,
                ..TargetNeeds::default()
            },
            Tier::Frozen => TargetNeeds {
                glibc: Some("the bundle's minimum".to_string()),
                platform: Some("linux_x86_64".to_string()),
                carries: Carries::DEPENDENCIES_AND_CPYTHON,
                ..TargetNeeds::default()
            },
            Tier::Oci | Tier::Docker => TargetNeeds {
                container_engine: true,
                carries: Carries::EVERYTHING,
                ..TargetNeeds::default()
            },
            Tier::Deb => TargetNeeds {
                package_manager: Some("dpkg".to_string()),
                glibc: Some("the bundle's minimum".to_string()),
                carries: Carries::DEPENDENCIES_AND_CPYTHON,
                ..TargetNeeds::default()
            },
            Tier::Rpm => TargetNeeds {
                package_manager: Some("rpm".to_string()),
                glibc: Some("the bundle's minimum".to_string()),
                carries: Carries::DEPENDENCIES_AND_CPYTHON,
                ..TargetNeeds::default()
            },
        }
    }

    /// Parse one tier name.
    pub fn parse(name: &str) -> Result<Tier, UnknownTier> {
        let wanted = name.trim().to_ascii_lowercase();
        Tier::ALL
            .into_iter()
            .find(|tier| tier.name() == wanted)
            .ok_or_else(|| UnknownTier {
                name: name.to_string(),
            })
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_along_the_gradient() {
        let rungs: Vec<Rung> = Tier::ALL.iter().map(|t| t.rung()).collect();
        let mut sorted = rungs.clone();
        sorted.sort();
        assert_eq!(rungs, sorted);
    }

    #[test]
    fn parse_round_trips_and_lists_valid_names_on_error() {
        for tier in Tier::ALL {
            assert_eq!(Tier::parse(tier.name()).unwrap(), tier);
        }
        let err = Tier::parse("flatpak").unwrap_err();
        assert_eq!(err.to_string(), "unknown tier `flatpak`");
        let hint = crate::Hint::hint(&err).unwrap_or_default();
        assert!(hint.contains("sdist, wheel, zipapp"), "{hint}");
    }

    #[test]
    fn what_a_tier_carries_grows_along_the_gradient() {
        let carries: Vec<Carries> = Tier::ALL
            .iter()
            .map(|t| t.generic_needs().carries)
            .collect();
        // What one tier carries, every tier on a higher rung carries too.
        for (tier, carried) in Tier::ALL.iter().zip(&carries) {
            for (higher, more) in Tier::ALL.iter().zip(&carries) {
                if higher.rung() > tier.rung() {
                    assert!(
                        more.dependencies >= carried.dependencies,
                        "{higher} / {tier}"
                    );
                    assert!(more.cpython >= carried.cpython, "{higher} / {tier}");
                }
            }
        }
        assert!(Tier::Frozen
            .generic_needs()
            .carries
            .cpython_on_the_target_libc());
        assert!(!Tier::Oci
            .generic_needs()
            .carries
            .cpython_on_the_target_libc());
        assert_eq!(Tier::Wheel.generic_needs().carries, Carries::default());
    }

    #[test]
    fn a_manifest_written_before_carries_was_recorded_reads_as_carrying_nothing() {
        let needs: TargetNeeds = serde_json::from_str(
            r#"{"python": null, "installer": false, "build_backend": false, "platform": null,
                "glibc": "2.17", "container_engine": false, "package_manager": null}"#,
        )
        .unwrap();
        assert_eq!(needs.carries, Carries::default());
    }

    #[test]
    fn needs_render_for_people() {
        let needs = Tier::Wheel.generic_needs();
        assert_eq!(needs.to_string(), "Python + pip");
        assert_eq!(Tier::Docker.generic_needs().to_string(), "container engine");
    }
}
