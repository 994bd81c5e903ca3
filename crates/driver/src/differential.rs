//! The differential smoke test: the reference venv, made once per run when the first tier
//! needs it (or read from the cache, where what came of it is kept by the digests of the
//! wheel, the lock and the interpreter), and the check that compares an artifact's probe
//! with it.

use gradient_core::reference::{Comparison, Reference};
use gradient_core::{Artifact, Backend, Inputs, InterpreterFacts, SmokeCheck, SmokeContext};
use gradient_python::reference::{check_program, make_reference, parse_result, ReferenceRequest};
use gradient_python::Installer;
use std::path::Path;
use std::sync::Arc;

pub use gradient_schema::ReferenceTally;

/// The reference of this run, made on first use and shared by every tier: `None` when the
/// run has no wheel and lock to make it from, or it could not be made (said once, as a
/// warning).
pub struct LazyReference<'a> {
    cell: tokio::sync::OnceCell<Option<Arc<Reference>>>,
    installer: &'a Installer,
    python: &'a InterpreterFacts,
    dir: std::path::PathBuf,
    cache: std::path::PathBuf,
    /// `--find-links`: the reference venv installs only from there, as the wheel's smoke
    /// test does.
    find_links: Option<std::path::PathBuf>,
}

/// The cache's folder of references: `KEY.json` each.
pub(crate) const CACHE_FOLDER: &str = "references";

impl<'a> LazyReference<'a> {
    pub fn new(
        installer: &'a Installer,
        python: &'a InterpreterFacts,
        work: &Path,
        cache: &Path,
        find_links: Option<std::path::PathBuf>,
    ) -> Self {
        LazyReference {
            cell: tokio::sync::OnceCell::new(),
            installer,
            python,
            dir: work.join("reference"),
            cache: cache.join(CACHE_FOLDER),
            find_links,
        }
    }

    /// Where the reference of these inputs is kept: named by the digest of everything it
    /// comes from.
    fn cached_file(&self, wheel: &Path, lock: &Path) -> Option<std::path::PathBuf> {
        let key = format!(
            "gradient {} {}\npython {} {}\nwheel {}\nlock {}\n",
            env!("CARGO_PKG_VERSION"),
            crate::tier_cache::this_executable(),
            self.python.executable.display(),
            self.python.full_version(),
            crate::publish::file_digest(wheel).ok()?,
            crate::publish::file_digest(lock).ok()?,
        );
        let name = crate::publish::sha256_hex(key.as_bytes());
        Some(self.cache.join(format!("{}.json", &name[..32])))
    }

    pub async fn get(
        &self,
        inputs: &Inputs,
        warn: &(dyn Fn(&str) + Sync),
    ) -> Option<Arc<Reference>> {
        self.cell
            .get_or_init(|| async {
                let made = self.make(inputs).await?;
                match made {
                    Ok(reference) => Some(Arc::new(reference)),
                    Err(why) => {
                        warn(&format!(
                            "the smoke tests do not compare with a reference venv: {why}"
                        ));
                        None
                    }
                }
            })
            .await
            .clone()
    }

    async fn make(&self, inputs: &Inputs) -> Option<Result<Reference, String>> {
        let (app, wheelhouse) = (inputs.app.as_ref()?, inputs.wheelhouse.as_ref()?);
        let cached = self.cached_file(&app.path, &wheelhouse.lock);
        // A file that does not read back as a reference is made again, and replaced.
        if let Some(reference) = cached
            .as_ref()
            .and_then(|file| std::fs::read(file).ok())
            .and_then(|bytes| serde_json::from_slice::<Reference>(&bytes).ok())
        {
            return Some(Ok(reference));
        }
        let made = self.make_venv(app, wheelhouse).await;
        if let (Ok(reference), Some(file)) = (&made, &cached) {
            keep(file, reference);
        }
        Some(made)
    }

    async fn make_venv(
        &self,
        app: &gradient_core::AppWheel,
        wheelhouse: &gradient_core::WheelhouseFiles,
    ) -> Result<Reference, String> {
        let info = &app.info;
        let mut distributions = vec![info.metadata.name.clone()];
        distributions.extend(wheelhouse.packages.iter().map(|p| p.name.clone()));
        let scripts = info.console_scripts.keys().cloned().collect();
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        make_reference(ReferenceRequest {
            installer: self.installer,
            python: &self.python.executable,
            wheel: &app.path,
            lock: &wheelhouse.lock,
            distributions,
            scripts,
            source: match &self.find_links {
                Some(folder) => gradient_python::installer::Source::Offline(folder),
                None => gradient_python::installer::Source::Index,
            },
            dir: &self.dir,
        })
        .await
    }
}

/// Write `reference` to `file` through a temporary file and a rename, so that a reader finds
/// it whole or not at all. A cache that cannot be written costs only making it again.
fn keep(file: &Path, reference: &Reference) {
    let Some(folder) = file.parent() else { return };
    let written = std::fs::create_dir_all(folder)
        .and_then(|()| tempfile::NamedTempFile::new_in(folder))
        .and_then(|mut temporary| {
            use std::io::Write;
            temporary.write_all(&serde_json::to_vec(reference).unwrap_or_default())?;
            temporary.persist(file).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(error) = written {
        tracing::debug!("the reference venv's findings were not kept: {error}");
    }
}

/// Run the probe with the artifact's own Python and compare it with the reference: one
/// check, failed by any difference, which it names; `None` when the tier runs no probe.
pub async fn compare_with_reference(
    backend: &dyn Backend,
    artifact: &Artifact,
    cx: &SmokeContext,
    reference: &Reference,
) -> Option<(SmokeCheck, Option<ReferenceTally>)> {
    let started = std::time::Instant::now();
    let code = check_program(&reference.plan);
    let title = "as in the reference venv: imports, importlib.metadata, entry points";
    let output = match backend.probe(artifact, cx, &code).await {
        Ok(None) => return None,
        Ok(Some(output)) => output,
        Err(error) => {
            return Some((
                failed(title, started, format!("the probe could not run: {error}")),
                None,
            ))
        }
    };
    let command = format!("{title} (`{}`)", output.command);
    let found = match output.stdout.and_then(|stdout| parse_result(&stdout)) {
        Ok(found) => found,
        Err(why) => return Some((failed(&command, started, why), None)),
    };
    let comparison = reference.compare(&found);
    let tally = ReferenceTally {
        matched: comparison.matched,
        total: comparison.total,
        failing_in_reference: comparison.failing_in_reference.len(),
    };
    Some((
        SmokeCheck {
            command,
            passed: comparison.mismatches.is_empty(),
            exit_code: Some(0),
            seconds: started.elapsed().as_secs_f64(),
            detail: describe(&comparison),
        },
        Some(tally),
    ))
}

fn failed(command: &str, started: std::time::Instant, detail: String) -> SmokeCheck {
    SmokeCheck {
        command: command.to_string(),
        passed: false,
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        detail,
    }
}

/// `N of M match`, then each difference (the first 20), then what fails in the reference
/// too.
fn describe(comparison: &Comparison) -> String {
    let mut text = format!(
        "{} of {} checks match the reference venv",
        comparison.matched, comparison.total
    );
    const SHOWN: usize = 20;
    for mismatch in comparison.mismatches.iter().take(SHOWN) {
        text.push_str(&format!("\n  differs: {mismatch}"));
    }
    if comparison.mismatches.len() > SHOWN {
        text.push_str(&format!(
            "\n  … and {} more differences",
            comparison.mismatches.len() - SHOWN
        ));
    }
    if !comparison.failing_in_reference.is_empty() {
        text.push_str(&format!(
            "\n  not counted, failing in the reference venv too: {}",
            comparison
                .failing_in_reference
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
        if comparison.failing_in_reference.len() > 5 {
            text.push_str(&format!(
                " … and {} more",
                comparison.failing_in_reference.len() - 5
            ));
        }
    }
    text
}
