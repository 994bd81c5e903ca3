//! The side-by-side comparison a run leaves beside its artifacts: `report.json` (for
//! machines; its types are gradient-schema's `Comparison`, re-exported here), `report.md`
//! (for pull requests and CI summaries) and `report.html` (one self-contained page with SVG
//! charts, no scripts, no network). All three are made from the manifest, one row per tier
//! along the gradient.

use crate::manifest::Manifest;
use crate::report::human_size;
use gradient_core::Rung;
pub use gradient_schema::report::*;
use std::path::Path;

/// The comparison rendered as the three report files.
pub trait Render {
    /// `report.json`, `report.md` and `report.html` as `(file name, bytes)`.
    fn files(&self) -> Vec<(&'static str, Vec<u8>)>;
    /// The comparison as a Markdown table, with a title line.
    fn markdown(&self) -> String;
    /// One self-contained page: the table and three charts along the gradient.
    fn html(&self) -> String;
}

/// Its build time as the reports show it: `cached` for a reused tier.
fn build_label(artifact: &RowArtifact) -> String {
    if artifact.reused {
        "cached".to_string()
    } else {
        format!("{:.2} s", artifact.build_seconds)
    }
}

/// A status as the reports show it.
fn status_text(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::SmokeFailed => "smoke test FAILED",
        Status::NotSmokeTested => "not smoke-tested",
        Status::Skipped => "skipped",
        Status::Unknown => "unknown",
    }
}

impl Render for Comparison {
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let json = serde_json::to_vec_pretty(self).expect("the report serialises");
        vec![
            (REPORT_FILES[0], json),
            (REPORT_FILES[1], self.markdown().into_bytes()),
            (REPORT_FILES[2], self.html().into_bytes()),
        ]
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "## gradient: {} {}\n\n| tier | file | size | build | start-up (first / warm) | smoke | reproducible | target needs |\n|---|---|---|---|---|---|---|---|\n",
            self.project.name, self.project.version
        );
        for row in &self.rows {
            let cells = cells(row);
            out.push_str(&format!(
                "| {} |\n",
                cells.map(|c| c.replace('|', "\\|")).join(" | ")
            ));
        }
        out.push_str(&format!(
            "\nBuilt by gradient {} with {} {} ({}); source date {}.\n",
            self.gradient_version,
            self.python.implementation,
            self.python.version,
            self.python.platform_tag,
            self.source_date.seconds
        ));
        out
    }

    fn html(&self) -> String {
        let title = format!("gradient: {} {}", self.project.name, self.project.version);
        let mut table = String::from(
            "<table id=\"comparison\">\n<thead><tr><th>tier</th><th>file</th><th>size</th><th>build</th><th>start-up (first / warm)</th><th>smoke</th><th>reproducible</th><th>target needs</th></tr></thead>\n<tbody>\n",
        );
        for row in &self.rows {
            let cells = cells(row);
            table.push_str(&format!(
                "<tr class=\"{}\" data-tier=\"{}\">{}</tr>\n",
                match row.status {
                    Status::SmokeFailed => "failed",
                    Status::Skipped => "skipped",
                    _ => "ok",
                },
                row.tier,
                cells
                    .iter()
                    .map(|c| format!("<td>{}</td>", escape(c)))
                    .collect::<String>()
            ));
        }
        table.push_str("</tbody>\n</table>\n");

        let built: Vec<(&Row, &RowArtifact)> = self
            .rows
            .iter()
            .filter_map(|r| r.artifact.as_ref().map(|a| (r, a)))
            .collect();
        let size_chart = bar_chart(
            "size",
            "Size of the artifact (log scale) against what its target must provide",
            &built
                .iter()
                .map(|(r, a)| {
                    (
                        r.tier.to_string(),
                        a.size as f64,
                        human_size(a.size),
                        rung_text(r.rung),
                    )
                })
                .collect::<Vec<_>>(),
            true,
        );
        let build_chart = bar_chart(
            "build",
            "Build time in this run (a reused tier took almost none)",
            &built
                .iter()
                .map(|(r, a)| {
                    (
                        r.tier.to_string(),
                        a.build_seconds,
                        build_label(a),
                        rung_text(r.rung),
                    )
                })
                .collect::<Vec<_>>(),
            false,
        );
        let startup_chart = bar_chart(
            "startup",
            "Start-up time of the smoke command, warm (first run in brackets)",
            &built
                .iter()
                .filter_map(|(r, a)| {
                    let s = a.startup.as_ref()?;
                    Some((
                        r.tier.to_string(),
                        s.warm_seconds,
                        format!("{:.3} s ({:.3} s)", s.warm_seconds, s.first_run_seconds),
                        rung_text(r.rung),
                    ))
                })
                .collect::<Vec<_>>(),
            false,
        );
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
<p>Each tier asks less of the machine that runs the app and carries more of it inside, from \
\"the target has Python and pip\" to \"the target has a package manager\".</p>\n{table}\
<h2>Size against what the target must provide</h2>\n{size_chart}\
<h2>Start-up</h2>\n{startup_chart}\
<h2>Build time</h2>\n{build_chart}\
<p class=\"foot\">Built by gradient {} with {} {} ({}); source date {}.</p>\n</body>\n</html>\n",
            escape(&self.gradient_version),
            escape(&self.python.implementation),
            escape(&self.python.version),
            escape(&self.python.platform_tag),
            self.source_date.seconds,
            title = escape(&title),
        )
    }
}

/// Write the three reports into `out_dir`, each atomically.
pub fn write_reports(out_dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    for (name, bytes) in Comparison::of(manifest).files() {
        crate::publish::write_text_atomically(&out_dir.join(name), &bytes)?;
    }
    Ok(())
}

/// tier, file, size, build, start-up, smoke, reproducible, target needs.
fn cells(row: &Row) -> [String; 8] {
    let Some(a) = &row.artifact else {
        let reason = row.skipped_reason.as_deref().unwrap_or("");
        return [
            row.tier.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("skipped: {}", reason.lines().next().unwrap_or("")),
            "-".into(),
            row.target_needs_text.clone(),
        ];
    };
    let mut smoke = match (a.smoke_passed, a.smoke_total) {
        (Some(passed), Some(total)) => format!("{} ({passed}/{total})", status_text(row.status)),
        _ => status_text(row.status).to_string(),
    };
    if let Some(tally) = &a.as_in_venv {
        smoke.push_str(&format!("; {}/{} as in a venv", tally.matched, tally.total));
    }
    [
        row.tier.to_string(),
        a.file.clone(),
        human_size(a.size),
        build_label(a),
        match &a.startup {
            Some(s) => format!("{:.3} s / {:.3} s", s.first_run_seconds, s.warm_seconds),
            None => "-".into(),
        },
        smoke,
        match a.reproducible {
            Some(true) => "yes".into(),
            Some(false) => "NO".into(),
            None => "not checked".into(),
        },
        row.target_needs_text.clone(),
    ]
}

fn rung_text(rung: Rung) -> String {
    match rung {
        Rung::PythonAndInstaller => "Python + pip",
        Rung::Python => "a Python",
        Rung::Libc => "a libc",
        Rung::ContainerEngine => "a container engine",
        Rung::PackageManager => "a package manager",
    }
    .to_string()
}

/// A horizontal bar chart as inline SVG: one bar per `(tier, value, label, target)`.
fn bar_chart(id: &str, title: &str, bars: &[(String, f64, String, String)], log: bool) -> String {
    const ROW: f64 = 28.0;
    const LEFT: f64 = 230.0;
    const WIDTH: f64 = 420.0;
    let scale = |v: f64| {
        if log {
            (v.max(1.0)).log10()
        } else {
            v.max(0.0)
        }
    };
    let max = bars
        .iter()
        .map(|b| scale(b.1))
        .fold(0.0_f64, f64::max)
        .max(f64::EPSILON);
    let height = ROW * bars.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg id=\"chart-{id}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n<title>{}</title>\n",
        LEFT + WIDTH + 120.0,
        escape(title),
        escape(title)
    );
    for (i, (tier, value, label, target)) in bars.iter().enumerate() {
        let y = 5.0 + ROW * i as f64;
        let width = (scale(*value) / max * WIDTH).max(1.0);
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" class=\"tier\">{}</text><text x=\"70\" y=\"{:.1}\" class=\"needs\">target has {}</text>\
<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" class=\"bar\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{}</text>\n",
            y + 17.0,
            escape(tier),
            y + 17.0,
            escape(target),
            ROW - 8.0,
            LEFT + width + 6.0,
            y + 17.0,
            escape(label)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body { font-family: system-ui, sans-serif; margin: 2em; color: #1d2330; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #d8dce4; padding: 0.3em 0.8em; text-align: left; font-size: 0.9em; }
tr.failed td { color: #b00020; }
tr.skipped td { color: #6b7280; }
.chart text { font-size: 13px; fill: #1d2330; }
.chart text.needs { fill: #6b7280; }
.chart rect.bar { fill: #3b6fd8; }
.foot { color: #6b7280; font-size: 0.85em; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_in_the_page() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_log_chart_draws_every_bar_within_its_width() {
        let bars = vec![
            (
                "wheel".to_string(),
                2_000.0,
                "2 KiB".to_string(),
                "Python + pip".to_string(),
            ),
            (
                "deb".to_string(),
                13_000_000.0,
                "12 MiB".to_string(),
                "a package manager".to_string(),
            ),
        ];
        let svg = bar_chart("size", "t", &bars, true);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains("width=\"420.0\""),
            "the largest bar fills the width: {svg}"
        );
    }
}
