//! `gradient advise`: the user says what the target machine has, and gets the tiers ranked,
//! the lowest rung that fits first, each with its reason: the packaging decision tree
//! (does it have Python and pip? a Python? only a libc? a container engine? a package
//! manager?) made executable against what each tier of this project needs.

use gradient_core::{python_satisfies, TargetNeeds, Tier};
use serde::Serialize;

/// What `--has` understands, for the help text and for the error on anything else.
pub const KNOWN_FACTS: &str = "python, python3, python3.X, pip, pip3, uv, glibc, libc, glibcX.Y, musl, docker, podman, containerd, dpkg, apt, rpm, dnf, yum, zypper, x86_64 (amd64), aarch64 (arm64)";

/// What the target machine provides, as the user said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetFacts {
    /// A Python, with its `X.Y` when given.
    pub python: Option<Option<(u32, u32)>>,
    pub installer: bool,
    /// glibc, with its `X.Y` when given; `Some(None)` for a glibc of unknown version.
    pub glibc: Option<Option<(u32, u32)>>,
    pub musl: bool,
    pub container_engine: bool,
    /// `dpkg`, `rpm`.
    pub package_managers: Vec<String>,
    /// The machine's architecture, `x86_64` or `aarch64`, when given.
    pub machine: Option<String>,
    /// No package index is reachable from the target.
    pub offline: bool,
}

/// A `--has` value gradient does not understand.
#[derive(Debug, thiserror::Error)]
#[error("`--has {value}` is not something gradient knows about")]
pub struct UnknownFact {
    pub value: String,
}

impl gradient_core::Hint for UnknownFact {
    fn hint(&self) -> Option<String> {
        Some(format!("known values are {KNOWN_FACTS} (and --offline)"))
    }
}

impl TargetFacts {
    /// Parse `--has` values (`python3.11`, `docker`, `glibc2.31`, ...).
    pub fn parse(values: &[String], offline: bool) -> Result<TargetFacts, UnknownFact> {
        let mut facts = TargetFacts {
            offline,
            ..TargetFacts::default()
        };
        for value in values {
            let text = value.trim().to_ascii_lowercase();
            let unknown = || UnknownFact {
                value: value.clone(),
            };
            match text.as_str() {
                "python" | "python3" => facts.python = Some(facts.python.flatten()),
                "pip" | "pip3" | "uv" => facts.installer = true,
                "glibc" | "libc" => facts.glibc = Some(facts.glibc.flatten()),
                "musl" => facts.musl = true,
                "docker" | "podman" | "containerd" => facts.container_engine = true,
                "dpkg" | "apt" => facts.package_managers.push("dpkg".into()),
                "rpm" | "dnf" | "yum" | "zypper" => facts.package_managers.push("rpm".into()),
                "x86_64" | "amd64" | "x86-64" => facts.machine = Some("x86_64".into()),
                "aarch64" | "arm64" => facts.machine = Some("aarch64".into()),
                _ => {
                    if let Some(version) = text.strip_prefix("python") {
                        facts.python = Some(Some(parse_xy(version).ok_or_else(unknown)?));
                    } else if let Some(version) = text.strip_prefix("glibc") {
                        facts.glibc = Some(Some(parse_xy(version).ok_or_else(unknown)?));
                    } else {
                        return Err(unknown());
                    }
                }
            }
        }
        Ok(facts)
    }
}

fn parse_xy(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim_start_matches('-').split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// One tier's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Advice {
    pub tier: Tier,
    /// The platform to build it for, when that is not this host's (`--platform`).
    pub platform: Option<gradient_core::Platform>,
    pub fits: bool,
    /// Why it fits (what it relies on) or why not (what is missing).
    pub reasons: Vec<String>,
}

/// Rank `tiers` (each with what its target must provide) for `facts`: the tiers that fit,
/// lowest rung first (they ask the most of the target and carry the least: the smallest
/// artifact that will run), then the rest.
pub fn advise(facts: &TargetFacts, tiers: &[(Tier, TargetNeeds)]) -> Vec<Advice> {
    let mut advice: Vec<(Advice, bool)> = tiers
        .iter()
        .map(|(tier, needs)| (judge(facts, *tier, needs), needs.build_backend))
        .collect();
    // Within a rung the tier that asks less of the target first: the wheel before the sdist,
    // which the target must also build.
    advice.sort_by_key(|(a, builds)| (!a.fits, a.tier.rung(), *builds, a.tier));
    advice.into_iter().map(|(advice, _)| advice).collect()
}

fn judge(facts: &TargetFacts, tier: Tier, needs: &TargetNeeds) -> Advice {
    let mut missing = Vec::new();
    let mut relies = Vec::new();
    if let Some(python) = &needs.python {
        let wanted = python.version.as_deref().unwrap_or("any version");
        match facts.python {
            None => missing.push(format!("a Python ({wanted})")),
            Some(None) => relies.push(format!("its Python, which must be {wanted}")),
            Some(Some(have)) => match python_fits(python.version.as_deref(), have) {
                Some(false) => missing.push(format!(
                    "Python {wanted}; the target has {}.{}",
                    have.0, have.1
                )),
                _ => relies.push(format!("its Python {}.{}", have.0, have.1)),
            },
        }
    }
    if needs.installer {
        if facts.installer {
            relies.push("pip".into());
        } else {
            missing.push("pip (or uv) to install it".into());
        }
        // Dependencies come from an index when the artifact does not carry them.
        if facts.offline && !needs.carries.dependencies {
            missing.push("a package index for the dependencies (the target is offline)".into());
        }
    }
    if needs.build_backend {
        if facts.offline {
            missing.push("the build backend from a package index (the target is offline)".into());
        } else {
            relies.push("the build backend, fetched from the index at install time".into());
        }
    }
    // A CPython brought along runs on the target's glibc (unless the artifact brings a
    // userspace too); its minimum is known once the runtime is built.
    if needs.glibc.is_none() && needs.carries.cpython_on_the_target_libc() {
        match facts.glibc {
            None if facts.musl => missing.push("glibc; the target has musl".into()),
            None => missing.push("glibc".into()),
            Some(_) => relies.push(
                "its glibc (the minimum version is known after a build: run `gradient build` first)"
                    .into(),
            ),
        }
    }
    if let Some(glibc) = &needs.glibc {
        match facts.glibc {
            None if facts.musl => missing.push(format!("glibc >= {glibc}; the target has musl")),
            None => missing.push(format!("glibc >= {glibc}")),
            Some(None) => relies.push(format!("its glibc, which must be >= {glibc}")),
            Some(Some(have)) => match parse_xy(glibc) {
                Some(need) if have < need => missing.push(format!(
                    "glibc >= {glibc}; the target has {}.{}",
                    have.0, have.1
                )),
                _ => relies.push(format!("its glibc {}.{}", have.0, have.1)),
            },
        }
    }
    // An artifact bound to a platform runs only on that machine (the image as built for its
    // platform; `advise_project` judges the tiers gradient builds for another machine as
    // built for the target's).
    if let (Some(platform), Some(machine)) = (&needs.platform, &facts.machine) {
        match machine_of(platform) {
            Some(built) if built != machine => {
                missing.push(format!("an {built} machine; the target is {machine}"))
            }
            Some(built) => relies.push(format!("its {built} machine")),
            // Not known before the build: say what it depends on.
            None => relies.push(platform.clone()),
        }
    }
    if needs.container_engine {
        if facts.container_engine {
            relies.push("its container engine".into());
        } else {
            missing.push("a container engine".into());
        }
    }
    if let Some(manager) = &needs.package_manager {
        if facts.package_managers.iter().any(|m| m == manager) {
            relies.push(manager.to_string());
        } else {
            missing.push(format!("{manager} (its package manager)"));
        }
    }
    let fits = missing.is_empty();
    let reasons = if fits {
        let mut reasons = vec![format!("carries {}", carries(tier))];
        if !relies.is_empty() {
            reasons.push(format!("relies on {}", relies.join(", ")));
        }
        reasons
    } else {
        vec![format!("needs {}", missing.join(", "))]
    };
    Advice {
        tier,
        platform: None,
        fits,
        reasons,
    }
}

/// The machine a platform (`linux_x86_64`, `manylinux_2_17_aarch64`, `linux/amd64`, or
/// several joined by `|`) is bound to, when it names exactly one.
fn machine_of(platform: &str) -> Option<&'static str> {
    let mut machines = platform.split('|').map(|p| {
        if p.ends_with("x86_64") || p.ends_with("/amd64") {
            Some("x86_64")
        } else if p.ends_with("aarch64") || p.ends_with("/arm64") {
            Some("aarch64")
        } else {
            None
        }
    });
    let first = machines.next()??;
    machines.all(|m| m == Some(first)).then_some(first)
}

/// Whether Python `have` meets `wanted`: an exact `X.Y` (with anything after it, as in
/// `3.11 as python3`) or a specifier; `None` when it cannot tell.
fn python_fits(wanted: Option<&str>, have: (u32, u32)) -> Option<bool> {
    let wanted = wanted?.trim();
    if wanted.starts_with(|c: char| c.is_ascii_digit()) {
        let exact = wanted.split_whitespace().next()?;
        return parse_xy(exact).map(|need| need == have);
    }
    // The patch release is unknown: judge by the newest one of X.Y.
    python_satisfies(wanted, (have.0, have.1, 999))
}

/// What a tier brings along, so the target need not have it.
fn carries(tier: Tier) -> &'static str {
    match tier {
        Tier::Sdist => "the source only: the target builds and installs it",
        Tier::Wheel => "the app only: the target installs it and its dependencies",
        Tier::Zipapp => "the app and its dependencies in one file",
        Tier::Frozen => "the app, its dependencies and CPython in one executable",
        Tier::Oci | Tier::Docker => "the app, its dependencies, CPython and a userspace",
        Tier::Deb | Tier::Rpm => {
            "the app, its dependencies and CPython, installed and removed by the package manager"
        }
    }
}

/// The advice for a project: each tier this gradient can build, with what its target must
/// provide, from the output folder's manifest when an earlier build left one (it knows the
/// runtime's glibc), else from the project and the build interpreter.
pub async fn advise_project(
    project_dir: &std::path::Path,
    out_dir: Option<&std::path::Path>,
    python: Option<&str>,
    facts: &TargetFacts,
) -> Result<Vec<Advice>, crate::DriverError> {
    let options = crate::BuildOptions {
        project_dir: project_dir.to_path_buf(),
        out_dir: out_dir.map(std::path::Path::to_path_buf),
        python: python.map(str::to_string),
        tiers: Tier::ALL.to_vec(),
        ..crate::BuildOptions::default()
    };
    let plan = crate::Plan::resolve(&options, crate::Purpose::Advice, &crate::Silent).await?;
    let interpreter = match (&plan.python, plan.python_error) {
        (Some(python), _) => python.clone(),
        (None, Some(error)) => return Err(error.into()),
        (None, None) => unreachable!("a plan without an interpreter says why"),
    };
    let built: Option<crate::manifest::Manifest> =
        std::fs::read(plan.out_dir.join(crate::manifest::MANIFEST_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    // A target of another machine than this host's: the tiers gradient builds for it are
    // judged as built with `--platform` for it (and say so), the others as they are.
    let foreign = facts
        .machine
        .as_deref()
        .and_then(|machine| {
            gradient_core::Platform::ALL
                .into_iter()
                .find(|p| p.machine() == machine)
        })
        .filter(|platform| !platform.is_host());
    let mut rebuilt = Vec::new();
    let tiers: Vec<(Tier, TargetNeeds)> = plan
        .entries
        .iter()
        .map(|entry| {
            let tier = entry.tier;
            let for_target = foreign.filter(|_| {
                matches!(
                    entry.builder.platform_scope(),
                    gradient_core::PlatformScope::Each | gradient_core::PlatformScope::Together
                )
            });
            let recorded = built.as_ref().and_then(|m| {
                m.artifacts
                    .iter()
                    .find(|a| a.tier == tier && (for_target.is_none() || a.platform == for_target))
                    .map(|a| a.target_needs.clone())
            });
            let mut needs =
                recorded.unwrap_or_else(|| entry.backend.target_needs(&plan.project, &interpreter));
            if let (Some(platform), Some(bound)) = (for_target, &needs.platform) {
                if machine_of(bound).is_some_and(|m| m != platform.machine()) {
                    needs.platform = Some(match tier {
                        Tier::Oci | Tier::Docker => platform.oci().to_string(),
                        _ => format!("linux_{}", platform.machine()),
                    });
                    rebuilt.push((tier, platform));
                }
            }
            (tier, needs)
        })
        .collect();
    let mut advice = advise(facts, &tiers);
    for entry in &mut advice {
        if let Some((_, platform)) = rebuilt.iter().find(|(tier, _)| *tier == entry.tier) {
            entry.platform = Some(*platform);
            entry
                .reasons
                .push(format!("built with --platform {platform}"));
        }
    }
    Ok(advice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_core::PythonNeed;

    fn needs(tier: Tier) -> TargetNeeds {
        let mut needs = tier.generic_needs();
        match tier {
            Tier::Wheel => {
                needs.python = Some(PythonNeed {
                    version: Some(">=3.9".into()),
                    implementation: None,
                })
            }
            Tier::Zipapp => {
                needs.python = Some(PythonNeed {
                    version: Some("3.11".into()),
                    implementation: Some("cpython".into()),
                })
            }
            Tier::Frozen | Tier::Deb => needs.glibc = Some("2.36".into()),
            _ => {}
        }
        needs
    }

    fn ranked(has: &[&str], offline: bool) -> Vec<(Tier, bool)> {
        let facts = TargetFacts::parse(
            &has.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            offline,
        )
        .unwrap();
        let tiers: Vec<_> = [
            Tier::Wheel,
            Tier::Zipapp,
            Tier::Frozen,
            Tier::Docker,
            Tier::Deb,
        ]
        .into_iter()
        .map(|t| (t, needs(t)))
        .collect();
        advise(&facts, &tiers)
            .into_iter()
            .map(|a| (a.tier, a.fits))
            .collect()
    }

    #[test]
    fn python_and_pip_make_the_wheel_first() {
        let ranking = ranked(&["python3.11", "pip", "glibc2.36"], false);
        assert_eq!(ranking[0], (Tier::Wheel, true));
        assert_eq!(ranking[1], (Tier::Zipapp, true));
        assert_eq!(ranking[2], (Tier::Frozen, true));
        assert!(ranking.contains(&(Tier::Docker, false)));
    }

    #[test]
    fn an_offline_target_with_another_python_gets_the_frozen_executable() {
        let ranking = ranked(&["python3.9", "pip", "glibc2.39"], true);
        assert_eq!(ranking[0], (Tier::Frozen, true));
        assert!(ranking.contains(&(Tier::Wheel, false)), "offline: no index");
        assert!(ranking.contains(&(Tier::Zipapp, false)), "built for 3.11");
    }

    #[test]
    fn an_old_glibc_or_musl_rules_out_the_bundled_tiers() {
        let ranking = ranked(&["glibc2.31", "docker", "dpkg"], false);
        assert_eq!(ranking[0], (Tier::Docker, true));
        assert!(ranking.contains(&(Tier::Frozen, false)));
        assert!(ranking.contains(&(Tier::Deb, false)));
        let ranking = ranked(&["musl"], false);
        assert!(ranking.iter().all(|(_, fits)| !fits));
    }

    #[test]
    fn the_verdict_follows_what_the_artifact_carries_not_its_tier() {
        let facts = TargetFacts::parse(&["python3.11".into(), "dpkg".into()], true).unwrap();
        let bundled = needs(Tier::Deb);
        // A package for the distribution's python3: no CPython inside, so no glibc asked.
        let mut system = Tier::Deb.generic_needs();
        system.glibc = None;
        system.carries.cpython = false;
        system.python = Some(PythonNeed {
            version: Some("3.11 as python3".into()),
            implementation: Some("cpython".into()),
        });
        let advice = advise(&facts, &[(Tier::Deb, bundled), (Tier::Rpm, system)]);
        assert!(!advice.iter().find(|a| a.tier == Tier::Deb).unwrap().fits);
        let rpm = advice.iter().find(|a| a.tier == Tier::Rpm).unwrap();
        assert!(rpm.fits, "{:?}", rpm.reasons);

        // A wheel that carried its dependencies would need no index on an offline target.
        let facts = TargetFacts::parse(&["python3.11".into(), "pip".into()], true).unwrap();
        let mut wheel = needs(Tier::Wheel);
        assert!(!advise(&facts, &[(Tier::Wheel, wheel.clone())])[0].fits);
        wheel.carries.dependencies = true;
        assert!(advise(&facts, &[(Tier::Wheel, wheel)])[0].fits);
    }

    #[test]
    fn an_artifact_built_for_one_machine_does_not_fit_another() {
        let mut frozen = needs(Tier::Frozen);
        frozen.platform = Some("linux_x86_64".into());
        let mut docker = needs(Tier::Docker);
        docker.platform = Some("linux/amd64".into());
        let mut zipapp = needs(Tier::Zipapp);
        zipapp.platform = Some("the build's platform, if compiled code is inside".into());
        let tiers = [
            (Tier::Frozen, frozen),
            (Tier::Docker, docker),
            (Tier::Zipapp, zipapp),
        ];
        let has = |values: &[&str]| {
            let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            TargetFacts::parse(&values, false).unwrap()
        };
        let on_arm = advise(
            &has(&["arm64", "glibc2.39", "docker", "python3.11"]),
            &tiers,
        );
        let verdict =
            |advice: &[Advice], tier| advice.iter().find(|a| a.tier == tier).unwrap().clone();
        let frozen = verdict(&on_arm, Tier::Frozen);
        assert!(!frozen.fits);
        assert_eq!(
            frozen.reasons,
            ["needs an x86_64 machine; the target is aarch64"]
        );
        assert!(!verdict(&on_arm, Tier::Docker).fits);
        assert!(
            verdict(&on_arm, Tier::Zipapp).fits,
            "a pure .pyz runs anywhere"
        );
        let on_x86 = advise(&has(&["amd64", "glibc2.39", "docker"]), &tiers);
        let frozen = verdict(&on_x86, Tier::Frozen);
        assert!(
            frozen.fits && frozen.reasons[1].contains("its x86_64 machine"),
            "{:?}",
            frozen.reasons
        );
        assert!(verdict(&on_x86, Tier::Docker).fits);
        assert_eq!(
            machine_of("manylinux_2_17_aarch64|linux_aarch64"),
            Some("aarch64")
        );
        assert_eq!(machine_of("linux_x86_64|linux_aarch64"), None);
    }

    #[test]
    fn unknown_values_are_refused_with_the_known_ones() {
        let error = TargetFacts::parse(&["kubernetes".into()], false).unwrap_err();
        let hint = gradient_core::Hint::hint(&error).unwrap_or_default();
        assert!(hint.contains("dpkg"), "{hint}");
        assert!(TargetFacts::parse(&["python3.x".into()], false).is_err());
        assert_eq!(
            TargetFacts::parse(&["Python3.12".into()], false)
                .unwrap()
                .python,
            Some(Some((3, 12)))
        );
    }
}
