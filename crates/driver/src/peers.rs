//! `gradient compare --peers`: the same project built by the reference tools this host has
//! (`python -m build`, `uv build`, shiv, pex, PyInstaller, `docker build` of a generated
//! Dockerfile, a venv packed with `dpkg-deb`), each timed, beside gradient's own run.
//!
//! Each peer is a short shell script run from the project's source, the way its users run
//! it: the time is the whole flow (installing the app where the tool needs it installed
//! included). A peer whose tool is missing is listed with the reason; one that fails is
//! listed with its output's tail. Neither stops the comparison.

use gradient_core::{normalize_name, Project, Tier};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tokio::process::Command;

/// One reference tool: what it builds and how.
struct PeerSpec {
    name: &'static str,
    /// The gradient tiers it stands beside; it runs when one of them is requested.
    tiers: &'static [Tier],
    /// What must be on this host, checked before it runs.
    needs: &'static [Need],
    /// `sh` script. Variables: PROJECT, OUT (its output folder), WORK (its scratch), PY (the
    /// build interpreter), NAME, VERSION, SCRIPT (the main console script), BASE (the
    /// docker base image).
    script: &'static str,
    /// The command that prints its version.
    version: &'static str,
    /// Its product is an image in the engine, tagged `gradient-peer/NAME:VERSION`.
    image: bool,
}

#[derive(Clone, Copy)]
enum Need {
    Program(&'static str),
    PythonModule(&'static str),
    DockerBase,
}

/// Shell functions every peer script may use.
const PRELUDE: &str = r#"set -eu
install() { py="$1"; shift
  if command -v uv >/dev/null; then uv pip install --quiet --python "$py" "$@"
  else "$py" -m pip install --quiet "$@"; fi; }
"#;

const PEERS: &[PeerSpec] = &[
    PeerSpec {
        name: "python -m build",
        tiers: &[Tier::Sdist, Tier::Wheel],
        needs: &[Need::PythonModule("build")],
        script: r#""$PY" -m build --outdir "$OUT" "$PROJECT" >/dev/null"#,
        version: r#""$PY" -m build --version"#,
        image: false,
    },
    PeerSpec {
        name: "uv build",
        tiers: &[Tier::Sdist, Tier::Wheel],
        needs: &[Need::Program("uv")],
        script: r#"uv build --quiet --python "$PY" --out-dir "$OUT" "$PROJECT""#,
        version: "uv --version",
        image: false,
    },
    PeerSpec {
        name: "shiv",
        tiers: &[Tier::Zipapp],
        needs: &[Need::Program("shiv")],
        script: r#"shiv --quiet --reproducible -c "$SCRIPT" -o "$OUT/$NAME.pyz" "$PROJECT""#,
        version: "shiv --version",
        image: false,
    },
    PeerSpec {
        name: "pex",
        tiers: &[Tier::Zipapp],
        needs: &[Need::Program("pex")],
        script: r#"pex --python "$PY" -c "$SCRIPT" -o "$OUT/$NAME.pex" "$PROJECT""#,
        version: "pex --version",
        image: false,
    },
    PeerSpec {
        name: "pyinstaller --onefile",
        tiers: &[Tier::Frozen],
        needs: &[Need::Program("pyinstaller")],
        // PyInstaller analyses what its own interpreter can import: the app is installed
        // for that interpreter into a folder of its own, and an entry script calls the
        // console script's function.
        script: r#"pyi_bin=$(readlink -f "$(command -v pyinstaller)")
pyi_py=$(dirname "$pyi_bin")/python
[ -x "$pyi_py" ] || pyi_py=$(head -n1 "$pyi_bin" | sed 's/^#! *//; s/^\/usr\/bin\/env *//')
install "$pyi_py" --target "$WORK/site" "$PROJECT"
"$pyi_py" - "$WORK/site" "$SCRIPT" > "$WORK/entry.py" <<'PY'
import configparser, glob, os, sys
site, script = sys.argv[1], sys.argv[2]
for path in glob.glob(os.path.join(site, "*.dist-info", "entry_points.txt")):
    entries = configparser.ConfigParser(interpolation=None)
    entries.optionxform = str
    entries.read(path)
    if entries.has_option("console_scripts", script):
        target = entries.get("console_scripts", script).split("[")[0].strip()
        module, _, attributes = target.partition(":")
        print(f"import sys\nimport {module.strip()} as entry")
        for attribute in filter(None, (a.strip() for a in attributes.split("."))):
            print(f"entry = entry.{attribute}")
        print("sys.exit(entry())")
        break
else:
    sys.exit(f"no console script {script} in {site}")
PY
PYINSTALLER_CONFIG_DIR="$WORK/config" pyinstaller --onefile --noconfirm --log-level ERROR \
  -n "$NAME" --paths "$WORK/site" --distpath "$OUT" --workpath "$WORK/build" \
  --specpath "$WORK" "$WORK/entry.py""#,
        version: "pyinstaller --version",
        image: false,
    },
    PeerSpec {
        name: "docker build",
        tiers: &[Tier::Oci, Tier::Docker],
        needs: &[Need::Program("docker"), Need::DockerBase],
        // The app and its dependencies as wheels on the host (pip's cache warm), installed
        // into a venv on a Debian-like base with Python in one Dockerfile step.
        script: r#"ctx="$WORK/context"
mkdir -p "$ctx/wheels"
"$PY" -m pip wheel --quiet --wheel-dir "$ctx/wheels" "$PROJECT"
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels $NAME && rm -rf /tmp/wheels
ENTRYPOINT ["/opt/venv/bin/$SCRIPT"]
DOCKERFILE
# BuildKit when this client has it (buildx), else the engine's classic builder.
if docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=1; else export DOCKER_BUILDKIT=0; fi
docker build --quiet --tag "gradient-peer/$NAME:$VERSION" "$ctx" >/dev/null"#,
        version: "docker version --format '{{.Client.Version}}'",
        image: true,
    },
    PeerSpec {
        name: "venv + dpkg-deb",
        tiers: &[Tier::Deb],
        needs: &[Need::Program("dpkg-deb")],
        // The venv is made in the package's tree, then its scripts are pointed at where it
        // is installed. Like any venv it needs the build machine's Python at the same path.
        script: r#"pkg="$WORK/package"
package=$(printf '%s' "$NAME" | tr 'A-Z_.' 'a-z--')
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin"
if command -v uv >/dev/null; then "$PY" -m venv --without-pip "$pkg/opt/$package"
else "$PY" -m venv "$pkg/opt/$package"; fi
install "$pkg/opt/$package/bin/python" "$PROJECT"
for script in "$pkg/opt/$package/bin/"*; do
  if [ -f "$script" ] && [ ! -L "$script" ]; then
    sed -i "1s|^#!$pkg/opt/$package/bin/|#!/opt/$package/bin/|" "$script"
  fi
done
ln -s "/opt/$package/bin/$SCRIPT" "$pkg/usr/bin/$SCRIPT"
printf 'Package: %s\nVersion: %s-1\nArchitecture: %s\nMaintainer: gradient compare <compare@localhost>\nDescription: %s in a venv\n' \
  "$package" "$VERSION" "$(dpkg --print-architecture)" "$NAME" > "$pkg/DEBIAN/control"
dpkg-deb --build --root-owner-group "$pkg" "$OUT/${package}_${VERSION}-1_venv.deb" >/dev/null"#,
        version: "dpkg-deb --version | head -n1",
        image: false,
    },
];

/// What the peers build from.
pub struct PeerProject<'a> {
    pub project: &'a Project,
    /// As the backend wrote them.
    pub name: &'a str,
    pub version: &'a str,
    pub python: &'a Path,
    /// `X.Y` of the build interpreter, to find a docker base with the same Python.
    pub python_version: &'a str,
    /// The run's output folder: each peer writes into `peers/NAME/` there.
    pub out_dir: &'a Path,
    /// `--peer-base`: the base image for `docker build`.
    pub docker_base: Option<&'a str>,
    /// gradient's wheel of the project, when the run built it: its entry points name the
    /// main console script.
    pub wheel: Option<&'a Path>,
}

/// How one peer went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRun {
    pub name: String,
    /// Its own `--version`, when it says.
    pub version: Option<String>,
    pub tiers: Vec<Tier>,
    pub status: PeerStatus,
    /// Wall time of its whole flow; `None` when it did not run.
    pub seconds: Option<f64>,
    /// What it wrote (relative to the output folder) and the sizes in bytes.
    pub files: Vec<PeerFile>,
    /// For `docker build`: the image's size as the engine reports it (uncompressed).
    pub image_size: Option<u64>,
    /// Why it did not run, or how it failed.
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerStatus {
    Built,
    Failed,
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFile {
    pub file: String,
    pub size: u64,
}

/// Run every peer that stands beside one of `tiers`, one after another. The caller holds
/// the output folder's lock.
pub async fn run_peers(
    target: &PeerProject<'_>,
    tiers: &[Tier],
    reporter: &dyn crate::Reporter,
) -> Vec<PeerRun> {
    let script = target
        .wheel
        .and_then(|wheel| gradient_wheel::read_app_wheel(target.project, wheel).ok())
        .and_then(|app| app.entry.ok()?.default)
        .unwrap_or_else(|| main_script(target.project, target.name));
    remove_stale_staging(&target.out_dir.join("peers"));
    let mut runs = Vec::new();
    for spec in PEERS
        .iter()
        .filter(|p| p.tiers.iter().any(|t| tiers.contains(t)))
    {
        let mut run = PeerRun {
            name: spec.name.to_string(),
            version: None,
            tiers: spec.tiers.to_vec(),
            status: PeerStatus::Unavailable,
            seconds: None,
            files: Vec::new(),
            image_size: None,
            reason: None,
        };
        let base = match check_needs(spec, target).await {
            Ok(base) => base,
            Err(reason) => {
                reporter.warn(&format!("peer {}: not run: {reason}", spec.name));
                run.reason = Some(reason);
                runs.push(run);
                continue;
            }
        };
        // The peer writes into a staging folder beside its final one, which replaces the
        // final one only when the peer succeeds: a failed or interrupted peer leaves the
        // previous complete result (or nothing), never half of its own.
        let peers_dir = target.out_dir.join("peers");
        let out = peers_dir.join(slug(spec.name));
        let staged = std::fs::create_dir_all(&peers_dir).and_then(|()| {
            let staging = tempfile::Builder::new()
                .prefix(&format!(".{}-", slug(spec.name)))
                .tempdir_in(&peers_dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))?;
            Ok(staging)
        });
        let staging = match staged {
            Ok(staging) => staging,
            Err(error) => {
                run.reason = Some(format!(
                    "cannot create a folder in `{}`: {error}",
                    peers_dir.display()
                ));
                runs.push(run);
                continue;
            }
        };
        // Locked while the peer runs: a killed run's is swept by the next (crate::debris).
        let work =
            match gradient_python::staging::Staged::dir_in(&std::env::temp_dir(), PEER_WORK_PREFIX)
            {
                Ok(work) => work,
                Err(error) => {
                    run.reason = Some(format!("cannot make a work folder: {error}"));
                    runs.push(run);
                    continue;
                }
            };
        let env = |command: &mut Command| {
            command
                .env("PROJECT", &target.project.root)
                .env("OUT", staging.path())
                .env("WORK", work.path())
                .env("PY", target.python)
                .env("NAME", target.name)
                .env("VERSION", target.version)
                .env("SCRIPT", &script)
                .env("BASE", base.as_deref().unwrap_or(""));
        };
        let mut version = Command::new("sh");
        version.args(["-c", spec.version]);
        env(&mut version);
        run.version = shell_output(version)
            .await
            .ok()
            .and_then(|text| version_number(&text));

        reporter.step(&format!("peer {}", spec.name));
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!("{PRELUDE}{}", spec.script));
        env(&mut command);
        let started = Instant::now();
        let result = shell_output(command).await.and_then(|output| {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::rename(staging.path(), &out)
                .map(|()| output)
                .map_err(|e| format!("cannot move its output to `{}`: {e}", out.display()))
        });
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(_) => {
                run.status = PeerStatus::Built;
                run.seconds = Some(seconds);
                run.files = files_in(&out, target.out_dir);
                if spec.image {
                    let tag = format!("gradient-peer/{}:{}", target.name, target.version);
                    let mut inspect = Command::new("docker");
                    inspect.args(["image", "inspect", "-f", "{{.Size}}", &tag]);
                    run.image_size = shell_output(inspect)
                        .await
                        .ok()
                        .and_then(|s| s.parse().ok());
                }
                reporter.done(&format!("peer {}: built", spec.name), seconds);
            }
            Err(error) => {
                run.status = PeerStatus::Failed;
                run.seconds = Some(seconds);
                reporter.warn(&format!("peer {} failed: {error}", spec.name));
                run.reason = Some(error);
            }
        }
        runs.push(run);
    }
    runs
}

/// The name prefix of a peer's work folder, in the temporary folder.
pub(crate) const PEER_WORK_PREFIX: &str = "gradient-peer-";

/// Remove the staging folders (`peers/.NAME-XXXXXX`) that runs killed mid-peer left. The
/// caller holds the output folder's lock, so no running peer is using one.
fn remove_stale_staging(peers_dir: &Path) {
    for entry in std::fs::read_dir(peers_dir).into_iter().flatten().flatten() {
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Without a wheel: the console script of `[project.scripts]` that `[tool.gradient] entry`
/// names, else the one named like the project, else the first (else the project's name).
fn main_script(project: &Project, name: &str) -> String {
    let named = normalize_name(name);
    let scripts = &project.scripts;
    if let Some(entry) = project
        .config
        .entry
        .as_ref()
        .filter(|e| scripts.contains_key(*e))
    {
        return entry.clone();
    }
    if scripts.keys().any(|s| normalize_name(s) == named) || scripts.is_empty() {
        return scripts
            .keys()
            .find(|s| normalize_name(s) == named)
            .cloned()
            .unwrap_or(named);
    }
    scripts.keys().next().cloned().unwrap_or(named)
}

/// Check what `spec` needs; the docker base image it will use, when it needs one.
async fn check_needs(spec: &PeerSpec, target: &PeerProject<'_>) -> Result<Option<String>, String> {
    let mut base = None;
    for need in spec.needs {
        match need {
            Need::Program(program) => {
                if gradient_python::interpreter::which(program).is_none() {
                    return Err(format!("`{program}` is not on PATH"));
                }
            }
            Need::PythonModule(module) => {
                let mut command = Command::new(target.python);
                command.args(["-c", &format!("import {module}")]);
                if shell_output(command).await.is_err() {
                    return Err(format!(
                        "the build interpreter has no `{module}` module (pip install {module})"
                    ));
                }
            }
            Need::DockerBase => base = Some(docker_base(target).await?),
        }
    }
    Ok(base)
}

/// `--peer-base`, else `python:X.Y-slim` or `python:X.Y` when the engine has one (no
/// registry may be reachable, so nothing is pulled).
async fn docker_base(target: &PeerProject<'_>) -> Result<String, String> {
    let version = target.python_version;
    let candidates: Vec<String> = match target.docker_base {
        Some(base) => vec![base.to_string()],
        None => vec![
            format!("python:{version}-slim"),
            format!("python:{version}"),
        ],
    };
    for candidate in &candidates {
        let mut inspect = Command::new("docker");
        inspect.args(["image", "inspect", "-f", "{{.Id}}", candidate]);
        if shell_output(inspect).await.is_ok() {
            return Ok(candidate.clone());
        }
    }
    Err(format!(
        "the engine has no base image {} (or no engine answers)\n  hint: pass --peer-base IMAGE with an image that has python3 {version} and its venv module",
        candidates.join(" or ")
    ))
}

/// The first word of a tool's `--version` output that looks like a version (`1.6.1` of
/// `build 1.6.1 (/usr/lib/...)`).
fn version_number(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(|word| word.trim_start_matches('v'))
        .find(|word| {
            word.contains('.')
                && word.starts_with(|c: char| c.is_ascii_digit())
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '-')
        })
        .map(str::to_string)
}

/// `pyinstaller --onefile` → `pyinstaller-onefile`: a folder name.
fn slug(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Its standard output, trimmed; `Err` with the output's tail when it fails.
async fn shell_output(mut command: Command) -> Result<String, String> {
    // The shell's children (the peer tool and its own) end with it when the run stops.
    let output = gradient_python::ProcessGroup::output_of(&mut command)
        .await
        .map_err(|e| format!("could not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let all = format!("{stdout}\n{stderr}");
        let tail: Vec<&str> = all.trim().lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "exited with {}\n{}",
            output.status,
            tail.join("\n")
        ))
    }
}

/// Every file under `dir`, relative to `base`, with its size.
fn files_in(dir: &Path, base: &Path) -> Vec<PeerFile> {
    let mut files: Vec<PeerFile> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| PeerFile {
            file: e
                .path()
                .strip_prefix(base)
                .unwrap_or(e.path())
                .display()
                .to_string(),
            size: e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .collect();
    files.sort_by(|a, b| a.file.cmp(&b.file));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_with_a_reference_tool_names_it_and_scripts_use_the_prelude_only() {
        for tier in [
            Tier::Sdist,
            Tier::Wheel,
            Tier::Zipapp,
            Tier::Frozen,
            Tier::Docker,
            Tier::Deb,
        ] {
            assert!(PEERS.iter().any(|p| p.tiers.contains(&tier)), "{tier}");
        }
        let names: std::collections::BTreeSet<_> = PEERS.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), PEERS.len(), "names are unique");
        assert_eq!(slug("pyinstaller --onefile"), "pyinstaller-onefile");
        assert_eq!(slug("venv + dpkg-deb"), "venv-dpkg-deb");
        for (text, version) in [
            (
                "build 1.6.1 (/usr/lib/python3/site-packages/build)",
                "1.6.1",
            ),
            ("shiv, version 1.0.8", "1.0.8"),
            (
                "Debian 'dpkg-deb' package archive backend version 1.21.22 (amd64).",
                "1.21.22",
            ),
            ("20.10.24+dfsg1", "20.10.24+dfsg1"),
        ] {
            assert_eq!(version_number(text).as_deref(), Some(version), "{text}");
        }
    }
}
