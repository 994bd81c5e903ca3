//! The reports a run writes beside its artifacts: the shapes of `report.json` and the
//! manifest are pinned by snapshots, and `report.html` is rendered by a real headless browser.

use crate::util::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A JSON document's shape: the keys of every object and the type of every value, an array
/// by the shapes of all its items merged, so that a schema change shows up as a diff.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => {
            Value::Array(items.iter().map(shape).reduce(merge).into_iter().collect())
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// Two shapes as one: objects by the union of their keys, arrays by their items; shapes
/// that differ otherwise become `{"one of": [...]}`.
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (a, b) if a == b => a,
        (Value::Object(mut a), Value::Object(b)) if !is_one_of(&a) && !is_one_of(&b) => {
            for (key, theirs) in b {
                let merged = match a.remove(&key) {
                    Some(ours) => merge(ours, theirs),
                    None => theirs,
                };
                a.insert(key, merged);
            }
            Value::Object(a)
        }
        (Value::Array(a), Value::Array(b)) => {
            Value::Array(a.into_iter().chain(b).reduce(merge).into_iter().collect())
        }
        (a, b) => {
            // One alternative per kind: objects merge with objects, arrays with arrays.
            let kind = |v: &Value| std::mem::discriminant(v);
            let mut all: Vec<Value> = Vec::new();
            for item in alternatives(a).into_iter().chain(alternatives(b)) {
                match all
                    .iter()
                    .position(|v| kind(v) == kind(&item) && !v.is_string())
                {
                    Some(at) => {
                        let ours = all.remove(at);
                        all.push(merge(ours, item));
                    }
                    None if !all.contains(&item) => all.push(item),
                    None => {}
                }
            }
            all.sort_by_key(|v| v.to_string());
            serde_json::json!({ "one of": all })
        }
    }
}

/// Whether an object shape is a `{"one of": [...]}` of alternatives.
fn is_one_of(map: &serde_json::Map<String, Value>) -> bool {
    map.len() == 1 && map.contains_key("one of")
}

/// The alternatives a shape stands for: the list of a `{"one of": [...]}`, else itself.
fn alternatives(shape: Value) -> Vec<Value> {
    match shape {
        Value::Object(mut map) if is_one_of(&map) => match map.remove("one of") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        },
        other => vec![other],
    }
}

#[test]
fn shapes_merge_the_same_whatever_the_order_of_the_items() {
    let items = [
        serde_json::json!(null),
        serde_json::json!({"a": 1}),
        serde_json::json!({"a": 2, "b": "x"}),
    ];
    let expected = serde_json::json!({"one of": ["null", {"a": "number", "b": "string"}]});
    for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]] {
        let array = Value::Array(order.iter().map(|&i| items[i].clone()).collect());
        assert_eq!(
            shape(&array),
            Value::Array(vec![expected.clone()]),
            "{order:?}"
        );
    }
}

/// Compare with `tests/snapshots/NAME` (rewritten when UPDATE_SNAPSHOTS=1).
fn assert_snapshot(name: &str, actual: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text,
        expected,
        "the shape of {name} changed: if on purpose, bump its schema_version when it is not a pure addition, document it, and run with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn the_reports_describe_every_tier_along_the_gradient_with_pinned_schemas() {
    let out = tempfile::tempdir().unwrap();
    // --rebuild: a fresh build, so the shapes do not depend on what the cache held.
    let output = build(
        &fixture("sampleapp"),
        out.path(),
        &["--rebuild", "--verify-reproducible", "--to", "zipapp,wheel"],
    );
    assert!(output.status.success());
    let table = stdout(&output);
    assert!(table.contains("REPRO"), "{table}");
    assert!(table.contains("START (FIRST/WARM)"), "{table}");
    assert_eq!(
        table.matches("  yes  ").count(),
        2,
        "both reproducible: {table}"
    );

    let report = read_json(&out.path().join("report.json"));
    assert_eq!(report["schema_version"], 1);
    let rows = report["rows"].as_array().unwrap();
    let tiers: Vec<&str> = rows.iter().map(|r| r["tier"].as_str().unwrap()).collect();
    assert_eq!(
        tiers,
        ["wheel", "zipapp"],
        "along the gradient, not as asked"
    );
    for row in rows {
        assert_eq!(row["status"], "passed");
        assert_eq!(row["artifact"]["reproducible"], true);
        // Start-up measured by the smoke test: the first run and the warm one, both real.
        let startup = &row["artifact"]["startup"];
        for key in ["first_run_seconds", "warm_seconds"] {
            let seconds = startup[key].as_f64().unwrap_or(0.0);
            assert!(seconds > 0.0 && seconds < 60.0, "{key}: {startup}");
        }
        assert_eq!(startup["command"], "sampleapp greet X", "{startup}");
        let file = out.path().join(row["artifact"]["file"].as_str().unwrap());
        assert_eq!(
            row["artifact"]["sha256"].as_str().unwrap(),
            sha256_file(&file)
        );
    }
    assert_eq!(rows[0]["rung"], "python-and-installer");
    assert_eq!(rows[1]["rung"], "python");
    assert_snapshot("report.shape.json", &shape(&report));

    let manifest = read_json(&out.path().join("gradient-manifest.json"));
    assert_eq!(manifest["schema_version"], 1);
    // A CycloneDX SBOM per artifact, listed in SHA256SUMS: the wheel bundles nothing, the
    // .pyz every locked distribution, with the lock's version, its hashes and its licence.
    let sums = std::fs::read_to_string(out.path().join("SHA256SUMS")).unwrap();
    let lock = std::fs::read_to_string(out.path().join("sampleapp-1.2.3.lock.txt")).unwrap();
    for artifact in manifest["artifacts"].as_array().unwrap() {
        let file = artifact["sbom"]["file"].as_str().unwrap();
        assert_eq!(
            file,
            format!("{}.cdx.json", artifact["file"].as_str().unwrap())
        );
        let path = out.path().join(file);
        assert!(
            sums.contains(&format!("{}  {file}\n", sha256_file(&path))),
            "{sums}"
        );
        let sbom = read_json(&path);
        assert_eq!(sbom["bomFormat"], "CycloneDX");
        assert_eq!(sbom["specVersion"], "1.5");
        assert_eq!(
            sbom["metadata"]["component"]["hashes"][0]["content"],
            artifact["sha256"]
        );
        let components = sbom["components"].as_array().unwrap();
        if artifact["tier"] == "wheel" {
            assert!(components.is_empty(), "{sbom}");
            continue;
        }
        let names: Vec<&str> = components
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["click", "msgpack"], "{sbom}");
        for component in components {
            let pin = format!(
                "{}=={}",
                component["name"].as_str().unwrap(),
                component["version"].as_str().unwrap()
            );
            assert!(lock.contains(&pin), "{pin} is the locked version");
            let first = component["hashes"][0]["content"].as_str().unwrap();
            assert!(
                lock.contains(&format!("--hash=sha256:{first}")),
                "{component}"
            );
            assert!(component["licenses"].is_array(), "{component}");
        }
    }
    assert_snapshot("manifest.shape.json", &shape(&manifest));

    let markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        markdown.contains("| wheel | sampleapp-1.2.3-py3-none-any.whl |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| zipapp | sampleapp-1.2.3.pyz |"),
        "{markdown}"
    );

    if !require("chromium") {
        return;
    }
    let page = out.path().join("report.html");
    let rendered = run(Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            out.path().join("browser").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display())));
    assert!(rendered.status.success());
    let dom = stdout(&rendered);
    assert!(dom.contains("<table id=\"comparison\">"), "{dom}");
    assert_eq!(dom.matches("<tr class=\"ok\" data-tier=").count(), 2);
    assert!(dom.contains("data-tier=\"wheel\"") && dom.contains("data-tier=\"zipapp\""));
    for chart in ["chart-size", "chart-startup", "chart-build"] {
        let start = dom.find(&format!("<svg id=\"{chart}\"")).expect(chart);
        let end = start + dom[start..].find("</svg>").unwrap();
        assert_eq!(
            dom[start..end].matches("<rect").count(),
            2,
            "{chart}: one bar per tier"
        );
    }
    assert!(
        dom.contains("target has a Python"),
        "the bars say what the target must provide"
    );
    // The page logs nothing: no script error, no blocked load (its policy forbids any).
    let log = stderr(&rendered);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::trim)
        .collect::<Vec<_>>();
    assert!(console.is_empty(), "the page logged: {console:?}");
}

#[test]
fn in_a_github_actions_job_the_comparison_is_appended_to_the_step_summary() {
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(&summary, "# an earlier step\n").unwrap();
    let output = run(gradient()
        .args(["build", "--to", "wheel", "--no-smoke"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(out.path().join("dist"))
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        text.starts_with("# an earlier step\n## gradient: sampleapp 1.2.3\n"),
        "{text}"
    );
    assert!(
        text.contains("| wheel | sampleapp-1.2.3-py3-none-any.whl |"),
        "{text}"
    );
    assert_eq!(
        text.matches("## gradient:").count(),
        1,
        "appended once: {text}"
    );
}

#[test]
fn report_merge_joins_runs_made_apart_and_refuses_damaged_or_foreign_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (wheel_dir, zipapp_dir, merged) = (
        dir.path().join("wheel"),
        dir.path().join("zipapp"),
        dir.path().join("merged"),
    );
    for (out, tier) in [(&wheel_dir, "wheel"), (&zipapp_dir, "zipapp")] {
        let output = build(&fixture("sampleapp"), out, &["--to", tier, "--no-smoke"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let merge = |out: &Path, dirs: &[&Path]| {
        run(gradient()
            .args(["report", "--out"])
            .arg(out)
            .arg("--merge")
            .args(dirs))
    };
    let output = merge(&merged, &[&wheel_dir, &zipapp_dir]);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = read_json(&merged.join("gradient-manifest.json"));
    let tiers: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tier"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["wheel", "zipapp"]);
    // Every listed file is there with its digest, SHA256SUMS covers them, the reports too.
    let sums = std::fs::read_to_string(merged.join("SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let (sha, file) = line.split_once("  ").unwrap();
        assert_eq!(sha256_file(&merged.join(file)), sha, "{file}");
    }
    assert!(
        sums.contains("sampleapp-1.2.3.pyz\n") && sums.contains(".whl\n"),
        "{sums}"
    );
    assert!(sums.contains("sampleapp-1.2.3.lock.txt\n"), "{sums}");
    let report = read_json(&merged.join("report.json"));
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);
    assert!(stdout(&output).contains("zipapp"));

    // A damaged download is named, and nothing is written.
    let bad = dir.path().join("bad");
    let pyz = zipapp_dir.join("sampleapp-1.2.3.pyz");
    let mut bytes = std::fs::read(&pyz).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pyz, bytes).unwrap();
    let output = merge(&bad, &[&wheel_dir, &zipapp_dir]);
    fails_with(
        &output,
        2,
        &["sampleapp-1.2.3.pyz", "does not match its manifest"],
    );
    assert!(!bad.exists(), "nothing written: {:?}", listing(&bad));

    // Another project's folder is refused.
    let other = dir.path().join("other");
    let output = build(
        &fixture("hatch-app"),
        &other,
        &["--to", "wheel", "--no-smoke"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let output = merge(&bad, &[&wheel_dir, &other]);
    fails_with(&output, 2, &["different projects", "sampleapp 1.2.3"]);
    // A folder without a manifest says what it expected.
    let output = merge(&bad, &[&wheel_dir, dir.path()]);
    fails_with(&output, 2, &["no manifest in", "gradient-manifest.json"]);

    // A folder built with another source date: the joined manifest could state only one.
    let later = dir.path().join("later");
    let output = run(gradient()
        .args(["build", "--to", "sdist", "--no-smoke"])
        .arg(fixture("sampleapp"))
        .arg("--out")
        .arg(&later)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = merge(&bad, &[&wheel_dir, &later]);
    fails_with(
        &output,
        2,
        &["built with different source dates", "1700000000"],
    );

    // A manifest edited to list a file outside its folder is not followed there.
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "not an artifact").unwrap();
    let path = wheel_dir.join("gradient-manifest.json");
    let mut manifest = read_json(&path);
    manifest["artifacts"][0]["file"] = "../outside.txt".into();
    manifest["artifacts"][0]["sha256"] = sha256_file(&outside).into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let output = merge(&bad, &[&wheel_dir]);
    fails_with(
        &output,
        2,
        &["it lists `../outside.txt`, which is not the name of a file in its folder"],
    );
    assert!(!bad.exists(), "nothing written: {:?}", listing(&bad));
}
