//! gradient-driver: from a request (`build --to sdist,wheel`) to published, smoke-tested
//! artifacts and a manifest.
//!
//! ```text
//!  BuildOptions ─► Project ─► interpreter ─► source date ─► plan (tiers + shared inputs)
//!        ─► shared inputs, once ─► each Backend: build ─► publish (atomic) ─► smoke
//!        ─► gradient-manifest.json + SHA256SUMS ─► RunOutcome (the CLI renders it)
//! ```
//! [`registry`] is the ordered list of tiers this build of gradient can make. The driver never
//! prints: it reports progress through the [`Reporter`] the caller gives it.

pub mod advise;
pub mod compare;
pub mod comparison;
mod debris;
pub mod differential;
pub mod doctor;
mod locks;
pub mod manifest;
pub mod merge;
pub mod peers;
pub mod plan;
pub mod project_lock;
pub mod publish;
pub mod registry;
pub mod report;
mod run;
pub mod sbom;
mod source_date;
mod tier_cache;

/// Check an image reference given with `--tag` (and give it `:latest` when it has no tag).
pub use gradient_oci::check_reference as check_image_reference;
pub use plan::{Plan, Purpose};
pub use run::{build, BuildOptions, RunOutcome, TierOutcome};
pub use source_date::resolve_source_date;

use std::path::PathBuf;

/// Where progress goes: typed events, which the CLI renders (live lines per tier on a
/// terminal, plain lines otherwise); tests can record them. The driver never formats a tier
/// into the text: `tier` says whose event it is.
pub trait Reporter: Send + Sync {
    fn report(&self, event: Event<'_>);

    /// Something long starts (for the run as a whole).
    fn step(&self, text: &str) {
        self.report(Event::new(None, EventKind::Step, text));
    }
    /// Something finished, in `seconds`.
    fn done(&self, text: &str, seconds: f64) {
        self.report(Event::new(None, EventKind::Done { seconds }, text));
    }
    /// Something the user should know but that does not stop the run.
    fn warn(&self, text: &str) {
        self.report(Event::new(None, EventKind::Warning, text));
    }
    /// A tier finished one of its steps, in `seconds`.
    fn tier_step_done(&self, tier: gradient_core::Tier, text: &str, seconds: f64) {
        self.report(Event::new(Some(tier), EventKind::Done { seconds }, text));
    }
    /// A tier's warning.
    fn tier_warn(&self, tier: gradient_core::Tier, text: &str) {
        self.report(Event::new(Some(tier), EventKind::Warning, text));
    }
    /// A tier has nothing more to do in this run (built, published and smoke-tested, or
    /// failed).
    fn tier_finished(&self, tier: gradient_core::Tier) {
        self.report(Event::new(Some(tier), EventKind::Finished, ""));
    }
}

/// One thing a run reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    /// The tier it is about; `None` for the run's shared work.
    pub tier: Option<gradient_core::Tier>,
    pub kind: EventKind,
    /// What happened, without the tier's name: the renderer puts it in front (and masks
    /// secrets in warnings, the text that can carry a tool's output).
    pub text: &'a str,
}

impl<'a> Event<'a> {
    pub fn new(tier: Option<gradient_core::Tier>, kind: EventKind, text: &'a str) -> Event<'a> {
        Event { tier, kind, text }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventKind {
    /// Something long starts.
    Step,
    /// Something finished, in `seconds`.
    Done {
        seconds: f64,
    },
    Warning,
    /// The tier has nothing more to do.
    Finished,
}

/// `1 package`, `3 packages`.
pub(crate) fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A reporter that shows nothing (a preview's plan has nothing to report).
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event<'_>) {}
}

/// Why a run could not start or could not finish its shared work.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Project(#[from] gradient_core::ProjectError),
    #[error(transparent)]
    Python(#[from] gradient_python::PythonError),
    #[error(transparent)]
    Tier(#[from] gradient_core::UnknownTier),
    #[error("failed to build the {input}")]
    Input {
        input: &'static str,
        #[source]
        source: gradient_wheel::WheelError,
    },
    #[error("failed to bundle the runtime")]
    Runtime(#[source] gradient_python::runtime::RuntimeError),
    #[error("failed to assemble the {platform} system the artifacts for it are made from")]
    Target {
        platform: gradient_core::Platform,
        #[source]
        source: gradient_python::target_python::TargetPythonError,
    },
    #[error("failed to build the wheelhouse")]
    Wheelhouse(#[from] gradient_python::wheelhouse::WheelhouseError),
    #[error("{project} requires Python {spec} (requires-python in `{}`), but the build interpreter is {found}", pyproject.display())]
    PythonExcluded {
        project: String,
        spec: String,
        pyproject: PathBuf,
        found: String,
        suggestion: String,
    },
    #[error("tier `{tier}` is planned but not built yet in this version of gradient")]
    Planned {
        tier: gradient_core::Tier,
        available: String,
    },
    /// An image reference that cannot be made (the default tag from the project's version).
    #[error(transparent)]
    Image(#[from] gradient_oci::OciError),
    #[error("no tiers requested")]
    NothingRequested,
    #[error(
        "this version of gradient builds the {tier} tier for the host's platform ({}) only, not for {platform}",
        host.map_or("unknown", gradient_core::Platform::oci)
    )]
    Platform {
        tier: gradient_core::Tier,
        platform: gradient_core::Platform,
        host: Option<gradient_core::Platform>,
    },
    #[error("cannot write to the output folder `{}`: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    #[error("SOURCE_DATE_EPOCH=`{value}` is {why}")]
    SourceDate { value: String, why: &'static str },
    #[error("the temporary folder `{}` cannot run programs (mounted noexec?), and the smoke tests run each artifact from there", path.display())]
    NoExec { path: PathBuf },
    /// Writing results failed after the build (the output folder may already hold some).
    #[error("failed to {action} `{}`", path.display())]
    Publish {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] gradient_lock::LockError),
    #[error("the lock `{}` leads outside the project folder (a symlink?)", lock.display())]
    LockOutside { lock: PathBuf },
    #[error("--locked, and the project `{}` has no lock (pylock.toml, pylock.NAME.toml, uv.lock, or requirements.txt hashed throughout)", project.display())]
    NoLock { project: PathBuf },
    #[error("the lock `{}` is out of date with pyproject.toml:\n  {}", lock.display(), differences.join("\n  "))]
    StaleLock {
        lock: PathBuf,
        differences: Vec<String>,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl gradient_core::Hint for DriverError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            DriverError::Project(error) => return error.hint(),
            DriverError::Python(error) => return error.hint(),
            DriverError::Tier(error) => return error.hint(),
            DriverError::Input { source, .. } => return source.hint(),
            DriverError::Runtime(error) => return error.hint(),
            DriverError::Target { source, .. } => return source.hint(),
            DriverError::Wheelhouse(error) => return error.hint(),
            DriverError::Image(error) => return error.hint(),
            DriverError::PythonExcluded { suggestion, .. } => {
                format!("pass --python with a version that fits, e.g. --python {suggestion}")
            }
            DriverError::Planned { available, .. } => format!(
                "available tiers are {available}; `gradient tiers` shows the whole gradient"
            ),
            DriverError::NothingRequested => "pass --to sdist,wheel or --all".into(),
            DriverError::Platform { platform, .. } => format!(
                "build that tier on a {platform} machine, leave {platform} out of --platform and `[tool.gradient] platforms`, or pass --all to skip it; `gradient plan --platform {platform}` shows what each tier builds for"
            ),
            DriverError::Output { .. } => "choose another one with --out DIR".into(),
            DriverError::SourceDate { .. } => {
                "unset it, or set it to e.g. `$(git log -1 --format=%ct)`".into()
            }
            DriverError::NoExec { .. } => "set TMPDIR to a folder that allows execution (e.g. `TMPDIR=$HOME/.cache/tmp`), or pass --no-smoke".into(),
            DriverError::Lock(error) => return error.hint(),
            DriverError::LockOutside { .. } => "a project's lock is a file of its own; a lock elsewhere is named with --lock FILE".into(),
            DriverError::NoLock { .. } => "make one (`uv lock`), name one with --lock FILE, or drop --locked to resolve afresh".into(),
            DriverError::StaleLock { .. } => "make the lock again (`uv lock`, or the tool that wrote it), or drop --locked to build from the lock as it is".into(),
            DriverError::Publish { .. } | DriverError::Io { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use gradient_core::Hint;
    use std::path::PathBuf;

    /// An error as the CLI prints it, and its text alone.
    fn shown(error: &(impl std::error::Error + Hint + 'static)) -> (String, Option<String>) {
        (gradient_core::error_chain(error), error.hint())
    }

    /// Errors of every crate, hinted ones among them: the text says what went wrong, the
    /// hint what to do, and no text carries a hint inside it.
    #[test]
    fn no_error_text_carries_its_hint() {
        use gradient_oci::OciError;
        use gradient_ospkg::OsPkgError;
        use gradient_python::pep517::HookError;
        use gradient_python::runtime::RuntimeError;
        use gradient_python::wheelhouse::WheelhouseError;
        use gradient_python::PythonError;
        use gradient_wheel::WheelError;
        use gradient_zipapp::ZipappError;
        let path = || PathBuf::from("/p/x");
        let not_found = || PythonError::NotFound {
            request: "3.11".into(),
            hint_version: "3.11".into(),
            searched: vec!["python3.11".into()],
        };
        let mismatch = || WheelError::Mismatch {
            file: "x.whl".into(),
            problem: "names differ".into(),
            hint: "rename it".into(),
        };
        let hinted: Vec<(String, Option<String>)> = vec![
            shown(&gradient_core::Project::load(&path()).unwrap_err()),
            shown(&gradient_core::Tier::parse("flatpak").unwrap_err()),
            shown(&not_found()),
            shown(&HookError::TimedOut {
                hook: "build_wheel".into(),
                seconds: 1,
                tail: String::new(),
            }),
            shown(&WheelhouseError::CredentialsInUrl {
                requirement: "x".into(),
            }),
            shown(&RuntimeError::ArchiveMissing { path: path() }),
            shown(&mismatch()),
            shown(&ZipappError::Entry(gradient_core::EntryError::NoEntry {
                project: "x".into(),
            })),
            shown(&gradient_frozen::FrozenError::PyInstallerLegacyScript { script: "x".into() }),
            shown(&OciError::Sandbox(gradient_sandbox::SandboxError::NoGlibc)),
            shown(&OsPkgError::Unmappable {
                what: "x".into(),
                rule: "y".into(),
                setting: "z".into(),
            }),
            shown(&super::DriverError::NothingRequested),
            shown(&super::DriverError::Input {
                input: "wheel",
                source: mismatch(),
            }),
            shown(&super::DriverError::Python(not_found())),
            shown(&crate::merge::MergeError::Damaged {
                path: path(),
                reason: "x".into(),
            }),
            shown(&crate::advise::UnknownFact { value: "x".into() }),
        ];
        for (text, hint) in &hinted {
            assert!(!text.contains("hint:"), "{text}");
            assert!(hint.as_ref().is_some_and(|h| !h.is_empty()), "{text}");
        }
        // A wrapper keeps its cause out of its own text: the chain shows it once.
        let (text, _) = &hinted[12];
        assert_eq!(
            text,
            "failed to build the wheel\n  caused by: `x.whl` does not match pyproject.toml: names differ"
        );
    }
}
