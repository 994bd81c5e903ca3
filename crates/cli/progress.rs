//! Progress on standard error: one live line per tier on a terminal (indicatif), plain lines
//! otherwise (CI logs, pipes), nothing but warnings with `--quiet`.

use gradient_core::Tier;
use gradient_driver::{Event, EventKind, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The live lines, while a terminal shows them: log lines are printed above them.
static LIVE: OnceLock<MultiProgress> = OnceLock::new();

/// The reporter for this process's standard error.
pub fn stderr_reporter(quiet: bool) -> Box<dyn Reporter> {
    use std::io::IsTerminal;
    if !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines { quiet })
    }
}

/// One plain line per event.
struct Lines {
    quiet: bool,
}

/// `zipapp: ` before a tier's text, nothing before the run's.
fn prefix(event: &Event<'_>) -> String {
    event.tier.map(|t| format!("{t}: ")).unwrap_or_default()
}

impl Reporter for Lines {
    fn report(&self, event: Event<'_>) {
        let (prefix, text) = (prefix(&event), event.text);
        match event.kind {
            EventKind::Step if !self.quiet => eprintln!("{prefix}{text} ..."),
            EventKind::Done { seconds } if !self.quiet => {
                eprintln!("  {prefix}{text} ({seconds:.2}s)")
            }
            EventKind::Warning => {
                eprintln!(
                    "warning: {}",
                    gradient_core::redact(&format!("{prefix}{text}"))
                )
            }
            _ => {}
        }
    }
}

/// A spinner per tier (and one for the shared inputs) showing what it does now; finished
/// steps and warnings scroll above them.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let _ = LIVE.set(multi.clone());
        Bars {
            multi,
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    /// The live line of `tier`, or the shared one.
    fn bar(&self, tier: Option<Tier>) -> ProgressBar {
        let key = tier.map_or("gradient", Tier::name).to_string();
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.entry(key.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:>8.bold} {wide_msg} {elapsed:>4}",
                    )
                    .expect("the template is valid"),
                );
                bar.set_prefix(key);
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }
}

impl Reporter for Bars {
    fn report(&self, event: Event<'_>) {
        let text = event.text;
        match event.kind {
            EventKind::Step => self.bar(event.tier).set_message(format!("{text} ...")),
            EventKind::Done { seconds } => {
                let line = format!("  {}{text} ({seconds:.2}s)", prefix(&event));
                let _ = self.multi.println(line);
                self.bar(event.tier).set_message(text.to_string());
            }
            EventKind::Warning => {
                let line = format!("{}{text}", prefix(&event));
                let _ = self
                    .multi
                    .println(format!("warning: {}", gradient_core::redact(&line)));
            }
            EventKind::Finished => {
                let key = event.tier.map_or("gradient", Tier::name);
                if let Some(bar) = self.bars.lock().expect("not poisoned").remove(key) {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// Where log lines (`tracing`) go: standard error, above the live lines when there are some,
/// so that neither garbles the other; secrets masked (the backend's output is logged here).
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(bytes);
        let shown = gradient_core::redact(&text);
        match LIVE.get() {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(shown.as_bytes()))?,
            None => std::io::stderr().write_all(shown.as_bytes())?,
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        for bar in self.bars.lock().expect("not poisoned").values() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
