//! The shape of the workspace: tier crates depend only downward (on core, python, archive,
//! wheel and the shared helpers below the tiers), never on another tier crate, so that
//! each tier can be changed alone.

use std::process::Command;

/// The tier crates: one per rung of the gradient above the wheel. The wheel crate is the
/// bottom rung every tier builds on, and the launcher is the frozen tier's own stub.
const TIER_CRATES: &[&str] = &[
    "gradient-zipapp",
    "gradient-frozen",
    "gradient-oci",
    "gradient-ospkg",
];

#[test]
fn tier_crates_do_not_depend_on_each_other() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("a list of packages");

    let mut edges = Vec::new();
    for tier in TIER_CRATES {
        // A renamed crate must fail here, not make the rule hold for want of crates.
        let package = packages
            .iter()
            .find(|p| p["name"] == *tier)
            .unwrap_or_else(|| panic!("the tier crate {tier} is not in the workspace"));
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let name = dependency["name"].as_str().unwrap_or_default();
            if TIER_CRATES.contains(&name) {
                let kind = dependency["kind"].as_str().unwrap_or("normal");
                edges.push(format!("{tier} -> {name} ({kind})"));
            }
        }
    }
    assert!(
        edges.is_empty(),
        "tier crates must depend only downward, never on another tier crate; found:\n  {}",
        edges.join("\n  ")
    );
}
