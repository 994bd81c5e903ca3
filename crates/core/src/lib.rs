//! gradient-core: the types every other gradient crate speaks.
//!
//! ```text
//!   pyproject.toml ──► Project ──┐
//!   interpreter probe ─► InterpreterFacts ─┤
//!                                ▼
//!            driver ──► BuildContext ──► dyn Backend (one per Tier) ──► Artifact
//!                                                  └──► SmokeReport
//! ```
//!
//! This crate holds data and the [`Backend`] trait only; it runs nothing. Probing
//! interpreters lives in `gradient-python`, building in the tier crates, planning in
//! `gradient-driver`. Keeping the shared types here breaks what would otherwise be a
//! dependency cycle between the driver and the backends.

mod app;
mod backend;
mod container;
mod epoch;
mod error;
mod interpreter;
mod ospackage;
mod platform;
mod project;
pub mod redact;
pub mod reference;
mod runtime;
mod specifier;
mod text;
mod tier;

pub use app::{AppScripts, AppWheel, CoreMetadata, EntryError, MissingInput, Tag, WheelInfo};
pub use backend::{
    AppIdentity, Artifact, Backend, BackendError, BuildContext, Host, Input, Inputs,
    LockedDependency, PlannedFile, PlatformScope, ProbeOutput, RuntimeFiles, SmokeCheck,
    SmokeContext, SmokeReport, Startup, TargetSystem, Unavailable, WheelhouseFiles,
};
pub use container::{BaseImage, ContainerConfig, PortSetting, DEFAULT_USER};
pub use epoch::{SourceDate, SourceDateOrigin, FALLBACK_EPOCH};
pub use error::{error_chain, render, Hint, TierError};
pub use interpreter::InterpreterFacts;
pub use ospackage::{
    check_package_name, check_package_version, maintainer_email, map_version, Layout,
    PackageConfig, PackageFormat, PackageVersion, ServiceConfig,
};
pub use platform::{unique_platforms, Platform, UnknownPlatform};
pub use project::{
    is_valid_name, line_column, normalize_name, BuildSystem, Config, FrozenConfig, FrozenEngine,
    Project, ProjectError, SmokeConfig, ZipappConfig, PORT_PLACEHOLDER, PYPROJECT,
};
pub use redact::{redact, show_command};
pub use runtime::{
    check_url, is_sha256, PlatformRuntime, RuntimeConfig, RuntimeSource, LOOPBACK_HOSTS,
};
pub use specifier::{is_pep440_version, python_satisfies};
pub use text::line_break;
pub use tier::{Carries, PythonNeed, Rung, TargetNeeds, Tier, UnknownTier};
