//! The `gradient` command line: parses arguments, renders what the driver reports, and
//! decides exit codes. No logic of its own lives here.
//!
//! Exit codes: 0 success; 1 a requested tier (or an input it needs) failed to build or
//! smoke-test; 2 the run could not start (bad project, bad arguments, no interpreter,
//! unwritable output); stopped by a signal, 128 + its number, as a shell reports it: 130
//! interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM: CI runners, `timeout`), 129 hung
//! up (SIGHUP: the terminal closed).

use clap::{Args, Parser, Subcommand};
use gradient_core::Hint;
use gradient_core::Tier;
use gradient_driver::doctor::TierStatus;
use gradient_driver::{report, BuildOptions, DriverError};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

mod progress;

/// Build one Python application into every tier of the packaging gradient, smoke-test each
/// artifact the way its target would run it, and compare them.
///
/// Tiers, from "the target has Python and pip" to "the target has a package manager":
/// sdist, wheel, zipapp, frozen, oci, docker, deb, rpm. `gradient tiers` shows what each one
/// asks of the target machine.
#[derive(Parser)]
#[command(
    name = "gradient",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Show more: -v for progress details and the build backend's output, -vv for debugging.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Hide the progress lines; warnings, errors and the final result still show.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build a project into one or more tiers, smoke-test each artifact, and write
    /// `gradient-manifest.json` and `SHA256SUMS` beside them.
    ///
    /// Example: `gradient build --to sdist,wheel fixtures/sampleapp`
    Build(BuildCommandArgs),
    /// List every tier along the gradient with what its target machine must provide.
    Tiers {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what a build would do, without building: the tiers this host can build (or why
    /// not), the shared inputs each needs, and whether the last build of each is cached.
    ///
    /// Example: `gradient plan --all --format github-matrix` (one CI job per tier)
    Plan(PlanArgs),
    /// Rank the tiers for a target machine: say what it has, get the tiers that fit, the
    /// lowest rung first, each with its reason.
    ///
    /// Example: `gradient advise --has python3.11,pip` or `--has glibc2.31,docker --offline`
    Advise(AdviseArgs),
    /// Build like `build` (every tier unless --to says otherwise), timed as one run, and with
    /// --peers build the same project with the reference tools found on this host, one after
    /// another: python -m build, uv build, shiv, pex, PyInstaller, docker build of a
    /// generated Dockerfile, a venv packed with dpkg-deb. Prints one table and writes
    /// `compare.json` and `compare.md` beside the artifacts (the peers' files go to
    /// OUT/peers/).
    ///
    /// Example: `gradient compare --peers --cold --no-smoke fixtures/sampleapp`
    Compare(CompareArgs),
    /// Join the output folders of separate runs (one CI job per tier) into one: every file
    /// checked against its manifest and copied, one manifest, SHA256SUMS and reports.
    ///
    /// Example: `gradient report --merge dist-wheel/ dist-docker/ --out dist/`
    Report(ReportArgs),
    /// Publish an output folder where its users fetch it: sign it (`SHA256SUMS.asc`,
    /// provenance), write apt and yum repositories into it, upload the wheel and sdist to a
    /// package index, push the image to a registry with its signature, provenance and SBOM.
    /// Every file is checked against the manifest first; a rerun sends nothing that is
    /// already there.
    ///
    /// Example: `gradient publish dist/ --key release.asc --key cosign.key --image
    /// registry.example/team/app --index https://upload.example/legacy/`
    Publish(PublishArgs),
    /// Check a published folder offline against public keys: every file's digest, the
    /// signature of SHA256SUMS, the provenance's signature and subjects, the repositories'
    /// signatures and indexes. Says per file what holds; exits 1 when anything does not.
    ///
    /// Example: `gradient verify dist/ --key release.pub.asc --key cosign.pub`
    Verify(VerifyArgs),
    /// Say which tiers this host can build, and why not.
    Doctor {
        /// The build interpreter to check: a version (`3.11`) or a path.
        #[arg(long, value_name = "PATH|X.Y")]
        python: Option<String>,
    },
}

#[derive(Args)]
struct BuildArgs {
    /// The project folder (holding pyproject.toml or setup.py).
    #[arg(default_value = ".")]
    project: PathBuf,
    /// Tiers to build, comma separated (e.g. `sdist,wheel`); see `gradient tiers`.
    /// `build` needs --to or --all; `compare` builds every tier unless --to names some.
    #[arg(long, value_delimiter = ',', value_name = "TIER,...", value_parser = parse_tier)]
    to: Vec<Tier>,
    /// Build every tier this host can build (the others are skipped, with the reason).
    #[arg(long, conflicts_with = "to")]
    all: bool,
    /// Where artifacts go [default: PROJECT/dist].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build interpreter: a version (`3.11`, found on PATH or in pyenv) or a path.
    /// Default: `[tool.gradient] python`, else `python3` on PATH.
    #[arg(long, value_name = "PATH|X.Y")]
    python: Option<String>,
    /// Platforms to build for, comma separated: `linux/amd64`, `linux/arm64` (or `amd64`,
    /// `arm64`, `x86_64`, `aarch64`). Default: `[tool.gradient] platforms`, else the host's.
    /// This version builds for the host's platform only and refuses another; `gradient
    /// plan --platform` lists what each tier would need.
    #[arg(long, value_delimiter = ',', value_name = "OS/ARCH,...", value_parser = parse_platform)]
    platform: Vec<gradient_core::Platform>,
    /// Build the wheel straight from the source tree instead of from the unpacked sdist
    /// (the backend may then write into the tree, as setuptools' build/ does).
    #[arg(long)]
    direct: bool,
    /// Skip the smoke tests.
    #[arg(long)]
    no_smoke: bool,
    /// Build the sdist, the wheel and every tier again instead of reusing an identical
    /// earlier build (inputs cached by their content, such as the runtime bundle, are still
    /// reused).
    #[arg(long)]
    rebuild: bool,
    /// Build each tier a second time and check that the bytes are the same (the table's
    /// REPRO column, `reproducible` in the manifest).
    #[arg(long)]
    verify_reproducible: bool,
    /// Stop every other tier as soon as one fails (default: the others finish).
    #[arg(long)]
    fail_fast: bool,
    /// Fail when the runtime needs a shared library this host lacks (default: warn).
    #[arg(long)]
    strict: bool,
    /// Smoke tests install dependencies only from this folder of wheels (no index).
    #[arg(long, value_name = "DIR")]
    find_links: Option<PathBuf>,
    /// Image references for the oci and docker tiers, comma separated or repeated
    /// [default: NAME:VERSION,NAME:latest].
    #[arg(long, value_delimiter = ',', value_name = "NAME[:TAG]", value_parser = parse_tag)]
    tag: Vec<String>,
    /// Stop a PEP 517 hook of the build backend (or its import) still running after this
    /// many seconds, and fail the build; 0 for no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    hook_timeout: u64,
    /// The script the .pyz, the frozen executable and the image run by default (a console
    /// script's name, or `module:function`), over `[tool.gradient] entry`.
    #[arg(long, value_name = "NAME")]
    entry: Option<String>,
    #[command(flatten)]
    lock: LockArgs,
    /// Print the manifest as JSON on stdout instead of the table (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

/// Where the dependencies' versions come from.
#[derive(Args)]
struct LockArgs {
    /// Take the dependencies' versions and hashes from this lock: a pylock.toml (PEP 751),
    /// a uv.lock, or a requirements file hashed throughout [default: `[tool.gradient] lock`,
    /// else the first of pylock.toml, uv.lock, requirements.txt found in the project].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Fail (exit 2, nothing written) when the project has no lock or it is out of date
    /// with pyproject.toml; without it a stale lock is a warning and is used as it is.
    #[arg(long)]
    locked: bool,
    /// Ignore the project's lock and resolve the dependencies afresh.
    #[arg(long, conflicts_with_all = ["lock", "locked"])]
    no_lock: bool,
}

impl LockArgs {
    fn options(&self) -> gradient_driver::project_lock::LockOptions {
        gradient_driver::project_lock::LockOptions {
            file: self.lock.clone(),
            locked: self.locked,
            ignore: self.no_lock,
        }
    }
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// Also build the project with the reference tools found on this host (a tool that is
    /// missing is listed with the reason, one that fails with its output).
    #[arg(long)]
    peers: bool,
    /// Run gradient on an empty cache of its own, so its time is a cold build. uv's and pip's
    /// download caches are left as they are, for every tool alike.
    #[arg(long)]
    cold: bool,
    /// The base image (with python3 and its venv module) the peer `docker build` starts
    /// from [default: python:X.Y-slim or python:X.Y, when the engine has one].
    #[arg(long, value_name = "IMAGE")]
    peer_base: Option<String>,
}

#[derive(Args)]
struct BuildCommandArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// When every tier built and passed, publish the output folder as `gradient publish`
    /// does, with the options below.
    #[arg(long)]
    publish: bool,
    #[command(flatten)]
    release: ReleaseArgs,
}

/// Where a release goes and what signs it.
#[derive(Args)]
struct ReleaseArgs {
    /// Push the image to this registry repository (`HOST[:PORT]/PATH`), under the tags it
    /// was built with. Credentials: GRADIENT_REGISTRY_USERNAME and _PASSWORD, else the
    /// Docker config (`docker login`, credential helpers).
    #[arg(long, value_name = "REGISTRY/REPOSITORY")]
    image: Option<String>,
    /// Upload the wheel and sdist to this package index's upload URL (twine's
    /// --repository-url). Credentials: GRADIENT_INDEX_TOKEN, or GRADIENT_INDEX_USERNAME and
    /// _PASSWORD, else ~/.pypirc.
    #[arg(long, value_name = "URL")]
    index: Option<String>,
    /// Sign with this private key, repeatable: an armoured OpenPGP secret key (packages,
    /// repositories, SHA256SUMS.asc) and/or a PEM ECDSA P-256 key (image signature,
    /// provenance). Default: the key text in GRADIENT_SIGNING_KEY; a protected OpenPGP key
    /// takes its passphrase from GRADIENT_KEY_PASSPHRASE.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Do not write the apt and yum repositories into the folder.
    #[arg(long)]
    no_repositories: bool,
    /// Say what would be sent where, and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Allow plain HTTP to a registry or index that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// Trust this certificate authority (PEM) for the registry's and the index's TLS.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Args)]
struct PublishArgs {
    /// The output folder of a build, with its gradient-manifest.json.
    #[arg(default_value = "dist")]
    dir: PathBuf,
    /// The project whose `[tool.gradient.publish]` names the destinations and keys
    /// [default: the folder's parent, when it is the project the manifest names].
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Print what was sent as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The published folder, or an image in a registry (`HOST[:PORT]/REPOSITORY[:TAG]` or
    /// `…@sha256:DIGEST`): its signature, provenance and SBOM are fetched and checked here.
    #[arg(default_value = "dist", value_name = "DIR|IMAGE")]
    dir: PathBuf,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    insecure: bool,
    /// Trust this certificate authority (PEM) for the registry's TLS.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// A public key to check against, repeatable: an armoured OpenPGP public key and/or a
    /// PEM ECDSA P-256 public key.
    #[arg(long, value_name = "FILE", required = true)]
    key: Vec<PathBuf>,
    /// Print every check as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// The output folders to join, each with its gradient-manifest.json.
    #[arg(long, num_args = 1.., required = true, value_name = "DIR")]
    merge: Vec<PathBuf>,
    /// Where the joined folder goes.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    out: PathBuf,
    /// Print the joined manifest as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlanArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    project: PathBuf,
    /// Tiers to plan, comma separated [default: every tier].
    #[arg(long, value_delimiter = ',', value_name = "TIER,...", value_parser = parse_tier)]
    to: Vec<Tier>,
    /// Every tier (the default).
    #[arg(long, conflicts_with = "to")]
    all: bool,
    /// The output folder whose last build is looked up [default: PROJECT/dist].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build interpreter: a version or a path (as for `build`).
    #[arg(long, value_name = "PATH|X.Y")]
    python: Option<String>,
    /// Platforms to plan for, comma separated, as for `build` [default: `[tool.gradient]
    /// platforms`, else the host's]. Each tier is listed once per platform.
    #[arg(long, value_delimiter = ',', value_name = "OS/ARCH,...", value_parser = parse_platform)]
    platform: Vec<gradient_core::Platform>,
    /// `text` (a table), `json`, or `github-matrix` (`{"include": [{"tier": ...,
    /// "platform": ...}]}` of the tiers this host can build).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "github-matrix"])]
    format: String,
    /// The same as `--format json`, as for `build` and `advise`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Args)]
struct AdviseArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    project: PathBuf,
    /// What the target machine has, comma separated or repeated: python3, python3.X, pip,
    /// uv, glibc, glibcX.Y, musl, docker, podman, containerd, dpkg, apt, rpm, dnf, yum, and
    /// its machine: x86_64 (amd64) or aarch64 (arm64).
    #[arg(long, value_delimiter = ',', value_name = "FACT,...")]
    has: Vec<String>,
    /// The target reaches no package index.
    #[arg(long)]
    offline: bool,
    /// The output folder of an earlier build, whose manifest knows the exact needs (the
    /// runtime's glibc) [default: PROJECT/dist].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build interpreter: a version or a path (as for `build`).
    #[arg(long, value_name = "PATH|X.Y")]
    python: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_tag(text: &str) -> Result<String, String> {
    gradient_driver::check_image_reference(text)
        .map_err(|e| gradient_core::render(&e.to_string(), e.hint().as_deref()))
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    Tier::parse(text).map_err(|e| gradient_core::render(&e.to_string(), e.hint().as_deref()))
}

fn parse_platform(text: &str) -> Result<gradient_core::Platform, String> {
    gradient_core::Platform::parse(text)
        .map_err(|e| gradient_core::render(&e.to_string(), e.hint().as_deref()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every file gradient makes, and every root its smoke tests unpack and then enter as an
    // unprivileged user, gets the modes packaging tools assume (rpm's build scripts start
    // with `umask 022` too): a caller's `umask 027` must not make a correct artifact fail
    // its checks. Published files get fixed modes regardless.
    // SAFETY: umask(2) only sets this process's mask; no thread has started yet.
    unsafe {
        libc::umask(0o022);
    }
    // -q (which clap keeps apart from -v) hides progress, never warnings.
    let level = match cli.verbose {
        0 => "warn",
        1 => "warn,gradient=info,gradient_driver=info,gradient_python=info,gradient_wheel=info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRADIENT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(|| progress::LogWriter)
        .without_time()
        .with_target(false)
        .init();
    // Children die with the thread that started them (their parent-death signal, see
    // gradient-python's process module). A worker thread that gave its core away in
    // `block_in_place` ends up in the blocking pool, which ends idle threads after a while:
    // keep them for the whole run, so that no child is killed in the middle of it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(365 * 24 * 3600))
        .build()
        .expect("the async runtime starts");
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(cli) => code,
            (what, code) = stop_signal() => {
                // Dropping the run above killed the backend's process group and removed the
                // work folder; the output folder only ever receives finished files by rename.
                // Not eprintln!: after SIGHUP the terminal may be gone, and a failed write
                // must not turn the exit code into a panic's.
                let _ = writeln!(
                    std::io::stderr(),
                    "{what}: the output folder holds no partial file"
                );
                ExitCode::from(code)
            }
        }
    });
    // Work left on the blocking pool (compressing a layer, say) is not waited for: what it
    // stages is swept by the next run.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// The first of SIGINT, SIGTERM and SIGHUP, which all stop a run alike: what to say, and
/// the exit code (128 + the signal's number).
async fn stop_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind| signal(kind).expect("signal handlers install");
    let (mut interrupt, mut terminate, mut hangup) = (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
        listen(SignalKind::hangup()),
    );
    tokio::select! {
        _ = interrupt.recv() => ("interrupted", 130),
        _ = terminate.recv() => ("terminated", 143),
        _ = hangup.recv() => ("hung up", 129),
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Build(args) => build(args, cli.quiet).await,
        Command::Publish(args) => {
            let project = args
                .project
                .clone()
                .or_else(|| args.dir.parent().map(PathBuf::from));
            publish(
                &args.dir,
                project.as_deref(),
                &args.release,
                args.json,
                cli.quiet,
            )
            .await
        }
        Command::Verify(args) => verify(args).await,
        Command::Compare(args) => compare(args, cli.quiet).await,
        Command::Report(args) => merge_reports(args),
        Command::Tiers { json } => tiers(json),
        Command::Doctor { python } => doctor(python).await,
        Command::Plan(args) => plan(args).await,
        Command::Advise(args) => advise(args).await,
    }
}

/// Say so when an option can have no effect on the tiers asked for.
fn warn_of_idle_options(options: &BuildOptions, reporter: &dyn gradient_driver::Reporter) {
    let makes_images = options
        .tiers
        .iter()
        .any(|t| matches!(t, Tier::Oci | Tier::Docker));
    if !options.tags.is_empty() && !makes_images {
        reporter.warn("--tag names image references, but neither oci nor docker is built: it has no effect here");
    }
}

/// What `build` (and `compare`) asks the driver for. `--all`, or no `--to` when
/// `all_by_default`, means every tier this version can build.
fn build_options(args: &BuildArgs, all_by_default: bool) -> BuildOptions {
    let all = args.all || (all_by_default && args.to.is_empty());
    let tiers = if all {
        Tier::ALL
            .into_iter()
            .filter(|t| gradient_driver::registry::is_available(*t))
            .collect()
    } else {
        args.to.clone()
    };
    BuildOptions {
        project_dir: args.project.clone(),
        out_dir: args.out.clone(),
        tiers,
        python: args.python.clone(),
        route: if args.direct {
            gradient_wheel::WheelRoute::Direct
        } else {
            gradient_wheel::WheelRoute::ViaSdist
        },
        smoke: !args.no_smoke,
        find_links: args.find_links.clone(),
        rebuild: args.rebuild,
        verify_reproducible: args.verify_reproducible,
        fail_fast: args.fail_fast,
        strict: args.strict,
        all,
        tags: args.tag.clone(),
        hook_timeout: (args.hook_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.hook_timeout)),
        cache_dir: None,
        entry: args.entry.clone(),
        lock: args.lock.options(),
        platforms: args.platform.clone(),
        // The program as `gradient`, not the path it was started from.
        command: std::iter::once("gradient".to_string())
            .chain(std::env::args().skip(1))
            .collect(),
    }
}

/// Print an error on stderr, the one way gradient shows errors: `error: MESSAGE`, a
/// `  caused by: ...` line per cause, then `  hint: ...` when there is one.
fn print_error(err: &(impl std::error::Error + Hint + 'static)) {
    say_error(&gradient_core::error_chain(err), err.hint().as_deref());
}

/// As [`print_error`], for an error chain already made text (a tier's, or the CLI's own).
fn say_error(chain: &str, hint: Option<&str>) {
    eprintln!("error: {}", gradient_core::render(chain, hint));
}

/// The exit code of a run that could not finish: a failed shared input or a failure writing
/// results is a failed build (1); anything else stopped the run before it could start (2).
fn driver_failure(err: DriverError) -> ExitCode {
    print_error(&err);
    let code = match err {
        DriverError::Input { .. }
        | DriverError::Wheelhouse(_)
        | DriverError::Publish { .. }
        | DriverError::Runtime(_) => 1,
        _ => 2,
    };
    ExitCode::from(code)
}

/// 0 when every requested tier built and passed; else each failure on stderr and 1.
fn tier_failures(outcome: &gradient_driver::RunOutcome) -> ExitCode {
    let failures: Vec<_> = outcome
        .tiers
        .iter()
        .filter_map(|t| t.error.as_ref().map(|e| (t.tier, e, &t.hint)))
        .collect();
    for (tier, error, hint) in &failures {
        say_error(&format!("{tier} failed: {error}"), hint.as_deref());
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn compare(args: CompareArgs, quiet: bool) -> ExitCode {
    let options = gradient_driver::compare::CompareOptions {
        build: build_options(&args.build, true),
        peers: args.peers,
        cold: args.cold,
        docker_base: args.peer_base,
    };
    let reporter = progress::stderr_reporter(quiet);
    warn_of_idle_options(&options.build, reporter.as_ref());
    let outcome = gradient_driver::compare::compare(options, reporter.as_ref()).await;
    drop(reporter); // the progress lines are cleared before the result is printed
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return driver_failure(err),
    };
    if args.build.json {
        print_json(&outcome.comparison);
    } else {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(
            stdout,
            "{}",
            gradient_core::redact(&gradient_driver::compare::table(
                &outcome.comparison,
                &outcome.run
            ))
        );
        let _ = writeln!(stdout, "wrote {}", outcome.run.out_dir.display());
    }
    tier_failures(&outcome.run)
}

async fn build(command: BuildCommandArgs, quiet: bool) -> ExitCode {
    let args = command.build;
    let options = build_options(&args, false);
    let reporter = progress::stderr_reporter(quiet);
    warn_of_idle_options(&options, reporter.as_ref());
    let outcome = gradient_driver::build(options, reporter.as_ref()).await;
    drop(reporter); // the progress lines are cleared before the result is printed
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return driver_failure(err),
    };
    if args.json {
        print_json(&outcome.manifest);
    } else {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(
            stdout,
            "{}",
            gradient_core::redact(&report::run_table(&outcome))
        );
        // The manifest keeps what earlier runs left unchanged in the folder: say which
        // rows those are, so their times are not read as this run's.
        if !outcome.earlier.is_empty() {
            let names: Vec<String> = outcome.earlier.iter().map(Tier::to_string).collect();
            let _ = writeln!(
                stdout,
                "from earlier runs, unchanged in the folder: {}",
                names.join(", ")
            );
        }
        let _ = writeln!(stdout, "{}", report::wrote_line(&outcome));
    }
    let built = tier_failures(&outcome);
    if !command.publish || built != ExitCode::SUCCESS {
        return built;
    }
    publish(
        &outcome.out_dir,
        Some(&args.project),
        &command.release,
        false,
        quiet,
    )
    .await
}

/// `gradient publish`, and `build --publish` once the build is done.
async fn publish(
    dir: &std::path::Path,
    project: Option<&std::path::Path>,
    args: &ReleaseArgs,
    json: bool,
    quiet: bool,
) -> ExitCode {
    use gradient_release::{folder::Folder, keys::SigningKeys, publish};
    let folder = match Folder::open(dir) {
        Ok(folder) => folder,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    // `[tool.gradient.publish]` of the folder's project, under the flags.
    let (config, project_dir) = match project
        .filter(|p| p.join(gradient_core::PYPROJECT).is_file())
        .map(|p| (gradient_core::Project::load(p), p))
    {
        Some((Ok(loaded), dir))
            if loaded.name.as_deref().map(gradient_core::normalize_name)
                == Some(gradient_core::normalize_name(&folder.manifest.project.name)) =>
        {
            (loaded.config.publish, dir.to_path_buf())
        }
        Some((Err(err), _)) => {
            print_error(&err);
            return ExitCode::from(2);
        }
        _ => (Default::default(), PathBuf::new()),
    };
    let key_files: Vec<PathBuf> = if args.key.is_empty() {
        config.key.iter().map(|k| project_dir.join(k)).collect()
    } else {
        args.key.clone()
    };
    let keys = match SigningKeys::load(&key_files) {
        Ok(keys) => keys,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    let options = publish::PublishOptions {
        image: args.image.clone().or(config.image),
        index: args.index.clone().or(config.index),
        repositories: !args.no_repositories && config.repositories.unwrap_or(true),
        keys,
        dry_run: args.dry_run,
        insecure: args.insecure,
        ca_file: args.ca_file.clone(),
    };
    if options.dry_run {
        let steps = match publish::steps(&folder, &options) {
            Ok(steps) => steps,
            Err(err) => {
                print_error(&err);
                return ExitCode::from(2);
            }
        };
        if json {
            print_json(&steps);
        } else {
            for step in &steps {
                println!("would send {} to {}", step.what, step.to);
            }
            if steps.is_empty() {
                println!("nothing to publish: give --key, --image or --index");
            }
        }
        return ExitCode::SUCCESS;
    }
    let say = |what: &str| {
        if !quiet {
            let _ = writeln!(std::io::stderr(), "{}", gradient_core::redact(what));
        }
    };
    match publish::publish(&folder, &options, &say).await {
        Ok(sent) => {
            if json {
                print_json(&sent);
            } else {
                let mut stdout = std::io::stdout().lock();
                for item in &sent {
                    let verb = if item.sent { "sent" } else { "already there" };
                    // The digest, unless where it went already names it.
                    let digest =
                        if item.to.contains(&item.digest) || item.what.contains(&item.digest) {
                            String::new()
                        } else {
                            format!("  {}", item.digest)
                        };
                    let _ = writeln!(
                        stdout,
                        "{}",
                        gradient_core::redact(&format!(
                            "{verb:<13}  {}  → {}{digest}",
                            item.what, item.to
                        ))
                    );
                }
                if sent.is_empty() {
                    let _ = writeln!(stdout, "nothing to publish: give --key, --image or --index");
                }
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            print_error(&err);
            ExitCode::from(1)
        }
    }
}

/// `gradient verify`: every check, then 1 when any fails.
async fn verify(args: VerifyArgs) -> ExitCode {
    use gradient_release::registry::{ImageReference, RegistryOptions};
    use gradient_release::verify::{verify_folder, verify_image, Outcome};
    let keys = match gradient_release::keys::VerifyingKeys::load(&args.key) {
        Ok(keys) => keys,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    // A folder when there is one by that name or it cannot be an image, else an image.
    let given = args.dir.to_string_lossy();
    let checks = if args.dir.is_dir() || !given.contains('/') {
        verify_folder(&args.dir, &keys)
    } else {
        match ImageReference::parse(&given) {
            Ok(image) => {
                let options = RegistryOptions {
                    insecure: args.insecure,
                    ca_file: args.ca_file.clone(),
                    ..RegistryOptions::default()
                };
                verify_image(&image, &keys, &options).await
            }
            Err(err) => Err(err.into()),
        }
    };
    let checks = match checks {
        Ok(checks) => checks,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    let failed = checks.iter().filter(|c| c.fails()).count();
    if args.json {
        print_json(&checks);
    } else {
        let mut stdout = std::io::stdout().lock();
        for check in &checks {
            let (word, detail) = match &check.outcome {
                Outcome::Holds(d) => ("ok", d),
                Outcome::Fails(d) => ("FAILS", d),
                Outcome::Unchecked(d) => ("unchecked", d),
            };
            let _ = writeln!(
                stdout,
                "{word:<9}  {}  {}: {detail}",
                check.subject, check.property
            );
        }
        let _ = writeln!(stdout, "{} checks, {failed} failing", checks.len());
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn merge_reports(args: ReportArgs) -> ExitCode {
    let manifest = match gradient_driver::merge::merge(&args.merge, &args.out) {
        Ok(manifest) => manifest,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    if args.json {
        print_json(&manifest);
    } else {
        print!("{}", gradient_core::redact(&report::table(&manifest)));
        println!("wrote {}", args.out.display());
    }
    ExitCode::SUCCESS
}

/// `value` as pretty JSON on standard output, secrets masked (a closed pipe is not an
/// error).
fn print_json(value: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let _ = writeln!(std::io::stdout(), "{}", gradient_core::redact(&text));
}

fn tiers(json: bool) -> ExitCode {
    if json {
        let list: Vec<serde_json::Value> = Tier::ALL
            .iter()
            .map(|tier| {
                serde_json::json!({
                    "tier": tier,
                    "rung": tier.rung(),
                    "describe": tier.describe(),
                    "target_needs": tier.generic_needs(),
                    "available": gradient_driver::registry::is_available(*tier),
                })
            })
            .collect();
        print_json(&list);
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![[
        "TIER".to_string(),
        "TARGET MUST PROVIDE".to_string(),
        "STATUS".to_string(),
        "ARTIFACT".to_string(),
    ]];
    for tier in Tier::ALL {
        rows.push([
            tier.to_string(),
            tier.generic_needs().to_string(),
            if gradient_driver::registry::is_available(tier) {
                "available"
            } else {
                "planned"
            }
            .to_string(),
            tier.describe().to_string(),
        ]);
    }
    print!("{}", report::render(&rows));
    println!("\nTiers are listed along the gradient: each asks less of the target machine and carries more inside.");
    ExitCode::SUCCESS
}

async fn plan(args: PlanArgs) -> ExitCode {
    let tiers = if args.to.is_empty() {
        Tier::ALL.to_vec()
    } else {
        args.to
    };
    let plan = match gradient_driver::plan::plan(
        &args.project,
        args.out.as_deref(),
        args.python.as_deref(),
        &tiers,
        &args.platform,
        &args.lock.options(),
    )
    .await
    {
        Ok(plan) => plan,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    let format = if args.json {
        "json"
    } else {
        args.format.as_str()
    };
    match format {
        "json" => print_json(&plan),
        "github-matrix" => {
            let matrix = gradient_driver::plan::github_matrix(&plan);
            println!("{matrix}");
            // GitHub refuses an empty matrix with a message about the workflow file.
            if matrix["include"].as_array().is_some_and(Vec::is_empty) {
                say_error(
                    "this host can build none of the tiers asked for, and a GitHub job matrix cannot be empty",
                    Some("run `gradient plan` without --format to see why each tier is unavailable"),
                );
                return ExitCode::from(1);
            }
        }
        _ => {
            let mut rows = vec![[
                "TIER".to_string(),
                "PLATFORM".to_string(),
                "STATUS".to_string(),
                "INPUTS".to_string(),
                "WRITES".to_string(),
                "LAST BUILD".to_string(),
            ]];
            for planned in &plan {
                let inputs: Vec<String> = planned
                    .inputs
                    .iter()
                    .map(|i| match planned.cached_inputs.contains(i) {
                        true => format!("{} (cached)", i.name()),
                        false => i.name().to_string(),
                    })
                    .collect();
                rows.push([
                    planned.tier.to_string(),
                    gradient_driver::plan::platform_list(&planned.platforms),
                    match &planned.unavailable {
                        None => "would build".to_string(),
                        Some(why) => format!("skipped: {}", why.reason),
                    },
                    inputs.join(", "),
                    planned
                        .artifacts
                        .iter()
                        .map(|file| match file.settled {
                            true => file.name.clone(),
                            false => format!("{} (expected)", file.name),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    match &planned.last_build_cached {
                        Some(file) => format!("{file} cached (reused if nothing changed)"),
                        None => "not cached".to_string(),
                    },
                ]);
            }
            print!("{}", report::render(&rows));
            if let Some(lock) = plan.iter().find_map(|p| p.lock.as_ref()) {
                println!("\ndependencies: {}", lock.summary());
                for line in lock.differences.iter().chain(&lock.disagreements) {
                    println!("  {line}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

async fn advise(args: AdviseArgs) -> ExitCode {
    use gradient_driver::advise::{advise_project, TargetFacts};
    let facts = match TargetFacts::parse(&args.has, args.offline) {
        Ok(facts) => facts,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    if args.has.is_empty() {
        say_error(
            "say what the target has",
            Some(&format!(
                "e.g. --has python3.11,pip or --has glibc2.31,docker; known values are {}",
                gradient_driver::advise::KNOWN_FACTS
            )),
        );
        return ExitCode::from(2);
    }
    let advice = match advise_project(
        &args.project,
        args.out.as_deref(),
        args.python.as_deref(),
        &facts,
    )
    .await
    {
        Ok(advice) => advice,
        Err(err) => {
            print_error(&err);
            return ExitCode::from(2);
        }
    };
    if args.json {
        print_json(&advice);
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![["".to_string(), "TIER".to_string(), "WHY".to_string()]];
    for (rank, item) in advice.iter().enumerate() {
        rows.push([
            if item.fits {
                format!("{}.", rank + 1)
            } else {
                "no".to_string()
            },
            item.tier.to_string(),
            item.reasons.join("; "),
        ]);
    }
    print!("{}", report::render(&rows));
    match advice.iter().find(|a| a.fits) {
        Some(best) => println!("\nbest fit: gradient build --to {}", best.tier),
        None => println!("\nno tier fits this target: it needs at least a libc, a Python, a container engine or a package manager"),
    }
    ExitCode::SUCCESS
}

async fn doctor(python: Option<String>) -> ExitCode {
    let diagnosis = gradient_driver::doctor::diagnose(python.as_deref()).await;
    match &diagnosis.interpreter {
        Ok(found) => println!("build interpreter: {found}"),
        Err(why) => println!("build interpreter: none\n  {}", why.replace('\n', "\n  ")),
    }
    println!("installer:         {}", diagnosis.installer);
    println!("cache:             {}", diagnosis.cache_root);
    println!();
    let mut rows = vec![["TIER".to_string(), "STATUS".to_string()]];
    for (tier, status) in &diagnosis.tiers {
        let status = match status {
            TierStatus::Ready => "ready".to_string(),
            TierStatus::Unavailable(why) => match &why.hint {
                Some(hint) => format!(
                    "unavailable: {} (hint: {hint})",
                    why.reason.replace('\n', " ")
                ),
                None => format!("unavailable: {}", why.reason.replace('\n', " ")),
            },
            TierStatus::Planned => "planned (not in this version)".to_string(),
        };
        rows.push([tier.to_string(), status]);
    }
    print!("{}", report::render(&rows));
    println!();
    let mut rows = vec![[
        "PLATFORM".to_string(),
        "BUILDS".to_string(),
        "ITS PROGRAMS RUN HERE".to_string(),
    ]];
    for platform in &diagnosis.platforms {
        rows.push([
            platform.platform.clone(),
            match platform.builds {
                true => "yes (the host's)".to_string(),
                false => "no: this version builds for the host's platform only".to_string(),
            },
            match &platform.runs {
                Ok(how) => how.clone(),
                Err(why) => format!("no: {why}"),
            },
        ]);
    }
    print!("{}", report::render(&rows));
    if diagnosis.interpreter.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
