"""Build well-known PyPI applications from their sdists into every tier, and write the pass
matrix (project x tier) to docs/realworld.md.

Usage: python3 tests/realworld/run.py [--only NAME,...] [--matrix docs/realworld.md]
       [--platform linux/arm64]

Each project of tests/realworld/projects.toml is downloaded once (checked against PyPI's
sha256, kept in $GRADIENT_REALWORLD_CACHE or ~/.cache/gradient-realworld), unpacked into a
fresh folder, given its smoke test as [tool.gradient.smoke] (the command, and its `expect`,
`stdin`, `expect_exit` and `http` when the entry has them), and built with
`gradient build --all` (plus `--python X.Y` when the entry names a `python`). A cell passes when the tier's artifact was built and its smoke test
passed; a tier gradient skips is shown with the reason gradient printed. With `--platform`,
every tier is built for that platform (`gradient build --all --platform P`) and each artifact
smoke-tested under qemu-user when it is not the host's. A project whose
entry names a `lock` (the lock its sdist ships) must have been built from it, as the
published lock file's first line says; else every tier that carries its dependencies fails.
Exits 1 when a cell fails.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ["sdist", "wheel", "zipapp", "frozen", "oci", "docker", "deb", "rpm"]


def download(name, version, cache):
    """The project's sdist, from the cache or PyPI (its simple API, as pip reads it), checked
    against PyPI's digest."""
    cache.mkdir(parents=True, exist_ok=True)
    digest_file = cache / f"{name}-{version}.sha256"
    if digest_file.exists():
        filename, digest = digest_file.read_text().split()
        path = cache / filename
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return path
    index = f"https://pypi.org/simple/{name}/"
    request = urllib.request.Request(index, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    wanted = {f"{stem}-{version}.tar.gz" for stem in (name, name.replace("-", "_"), name.replace("_", "-"))}
    sdists = [f for f in files if f["filename"].lower() in {w.lower() for w in wanted}]
    if not sdists:
        raise RuntimeError(f"{name} {version} has no sdist on PyPI")
    sdist = sdists[0]
    with urllib.request.urlopen(urllib.parse.urljoin(index, sdist["url"]), timeout=300) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sdist["hashes"]["sha256"]:
        raise RuntimeError(f"{sdist['filename']}: sha256 {digest}, PyPI says {sdist['hashes']['sha256']}")
    path = cache / sdist["filename"]
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.rename(path)
    digest_file.write_text(f"{sdist['filename']} {digest}\n")
    return path


def unpack(sdist, into):
    with tarfile.open(sdist) as archive:
        archive.extractall(into, filter="data")
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


# The keys of a project's entry that go into [tool.gradient.smoke] as they are, besides
# `smoke` (the command) and `expect`: the standard input fed to the command, the exit code
# it must end with, and, for a web server, the path gradient GETs while it runs.
SMOKE_KEYS = ["stdin", "expect_exit", "http"]


def add_smoke(project_dir, project):
    """Give the project its smoke command, as a user would: in [tool.gradient.smoke]."""
    pyproject = project_dir / "pyproject.toml"
    text = pyproject.read_text() if pyproject.exists() else ""
    table = "\n[tool.gradient.smoke]\ncommand = " + json.dumps(project["smoke"]) + "\n"
    if project["expect"]:
        table += "expect = " + json.dumps(project["expect"]) + "\n"
    for key in SMOKE_KEYS:
        if key in project:
            table += f"{key} = " + json.dumps(project[key]) + "\n"
    pyproject.write_text(text + table)


def smoke_text(project):
    """The smoke test as the matrix shows it: the command, what it is fed, what it must give."""
    command = " ".join(project["smoke"])
    if "http" in project:
        text = f"`{command}`, then GET `{project['http']}`"
    else:
        text = f"`{command}`"
    if "stdin" in project:
        text += f" < `{json.dumps(project['stdin'])}`"
    wants = []
    if project.get("expect_exit", 0) != 0:
        wants.append(f"exit {project['expect_exit']}")
    if project["expect"]:
        wants.append(f"`{project['expect']}`")
    return text + " (" + (", ".join(wants) if wants else "exit 0") + ")"


def judge_skips(cells, expected):
    """A skip must be one the project lists, with the words it expects: any other is a failure
    (a tool missing on this host, or a regression in what gradient refuses)."""
    for tier, (status, detail) in list(cells.items()):
        words = expected.get(tier)
        if status == "skip" and (words is None or words not in detail):
            cells[tier] = ("FAIL", f"unexpected skip: {detail}")
        elif status != "skip" and words is not None:
            cells[tier] = ("FAIL", f"expected a skip ({words}), got {status}: {detail}")
    return cells


def build(gradient, project_dir, out, python=None, platform=None):
    """`gradient build --all` (with `--python` when the project names one, `--platform` when
    the run does); the cells of this project, tier by tier."""
    started = time.monotonic()
    command = [gradient, "build", "--all", "--json", "--out", str(out)]
    if python:
        command += ["--python", python]
    if platform:
        command += ["--platform", platform]
    result = subprocess.run(command + [str(project_dir)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    cells = {}
    try:
        manifest = json.loads(result.stdout)
    except json.JSONDecodeError:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        return {tier: ("FAIL", f"the run stopped: {tail}") for tier in TIERS}, seconds, result.stderr
    for artifact in manifest["artifacts"]:
        if platform and artifact.get("platform") not in (None, platform):
            return {tier: ("FAIL", f"{artifact['file']} is for {artifact['platform']}, not {platform}") for tier in TIERS}, seconds, result.stderr
        smoke = artifact.get("smoke") or {}
        if smoke.get("passed"):
            startup = smoke.get("startup") or {}
            note = f"{artifact['size'] / 2**20:.1f} MiB" if artifact["size"] > 2**20 else f"{artifact['size'] // 1024} KiB"
            if startup:
                note += f", starts in {startup['warm_seconds']:.2f} s"
            reference = smoke.get("reference")
            if reference:
                note += f", {reference['matched']}/{reference['total']} checks as in a venv"
            cells[artifact["tier"]] = ("pass", note)
        else:
            failed = [c for c in smoke.get("checks", []) if not c["passed"]]
            detail = failed[0]["command"] + ": " + failed[0]["detail"].splitlines()[0] if failed else "not smoke-tested"
            cells[artifact["tier"]] = ("FAIL", detail)
    for skipped in manifest["skipped"]:
        cells[skipped["tier"]] = ("skip", skipped["reason"].splitlines()[0])
    for tier in TIERS:
        cells.setdefault(tier, ("FAIL", "no artifact and no reason in the manifest"))
    return cells, seconds, result.stderr


CARRYING = ["zipapp", "frozen", "oci", "docker", "deb", "rpm"]


def lock_source(out):
    """Where the build took the dependencies' versions from, as the published hashed lock's
    first line says: `uv.lock`, `pylock.toml`, ..., `resolved`; `none` without one."""
    locks = sorted(Path(out).glob("*.lock.txt"))
    if not locks:
        return "none"
    first = locks[0].read_text().splitlines()[0]
    if ", from " in first:
        return first.split(", from ", 1)[1].split(" (sha256")[0]
    return "resolved"


def judge_lock(cells, expected, source):
    """Every tier that carries the dependencies fails when they did not come from the lock
    the project ships."""
    if expected is None or source == expected:
        return cells
    return {tier: (("FAIL", f"built from {source}, not from its {expected}") if tier in CARRYING and status == "pass" else (status, detail))
            for tier, (status, detail) in cells.items()}


def matrix(projects, results, platform=None):
    if platform:
        title = [f"# Real projects on {platform}", "",
                 f"Written by `just test-realworld-arm64` (`run.py --platform {platform} --only ...`) on an",
                 "x86_64 machine: the same as [realworld.md](realworld.md), but built with",
                 f"`gradient build --all --platform {platform}`, every {platform} artifact smoke-tested under qemu-user",
                 "(the image through the container engine, `docker run --platform`). Each application below is"]
    else:
        title = ["# Real projects", "",
                 "Written by `just test-realworld` (`python3 tests/realworld/run.py`): each application below is"]
    lines = title + [
        "downloaded from PyPI as its sdist (pinned, checked against PyPI's sha256), given its smoke",
        "command as `[tool.gradient.smoke]`, and built with `gradient build --all`. Every tier's artifact is",
        "smoke-tested the way its target runs it, offline, and compared with the app in a plain venv (every",
        "module imports, every entry point loads, every locked distribution is listed at its version). A",
        "cell is `pass` when the artifact was built and its smoke test, that comparison included, passed,",
        "or `skip` with the reason gradient itself printed.",
        "",
        "The suite needs PyPI and takes several minutes, so it is not part of `cargo test`: run it as a job",
        "of its own (`just test-realworld`, or `cargo build --release && python3 tests/realworld/run.py`). The",
        "sdists are kept in `$GRADIENT_REALWORLD_CACHE` (default `~/.cache/gradient-realworld`) between runs;",
        "`--only NAME,...` runs some of the projects.",
        "",
        "The column *versions from* says where the dependencies' versions came from: the lock the",
        "project's sdist ships (`uv.lock`, `pylock.toml`), which gradient reads, or gradient's own resolution.",
        "",
        "| project | " + " | ".join(TIERS) + " | versions from | time |",
        "|---|" + "---|" * (len(TIERS) + 2),
    ]
    for project in projects:
        cells, seconds, _, source = results[project["name"]]
        row = [f"{project['name']} {project['version']}"]
        for tier in TIERS:
            status, _ = cells[tier]
            row.append({"pass": "pass", "skip": "skip¹", "FAIL": "**FAIL**"}[status])
        row.append(source)
        row.append(f"{seconds:.0f} s")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Projects", "",
              "| project | build backend | Python | why it is here | smoke command (expected output) |",
              "|---|---|---|---|---|"]
    for project in projects:
        python = project.get("python", "default")
        lines.append(f"| {project['name']} {project['version']} | {project['backend']} | {python} | "
                     f"{project['why']} | {smoke_text(project).replace('|', '/')} |")
    notes = []
    for project in projects:
        cells, _, _, _ = results[project["name"]]
        for tier in TIERS:
            status, detail = cells[tier]
            if status != "pass":
                notes.append(f"- {project['name']}, {tier}: {status}: {detail.replace('|', '/')}")
    if notes:
        lines += ["", "## Skips and failures (¹)", ""] + notes
    sizes = []
    for project in projects:
        cells, _, _, _ = results[project["name"]]
        sizes.append(f"- {project['name']}: " + "; ".join(
            f"{tier} {cells[tier][1]}" for tier in TIERS if cells[tier][0] == "pass"))
    lines += ["", "## Sizes, warm start-up and checks matching the reference venv, of each passing artifact", ""] + sizes
    lines += ["", f"Python {sys.version.split()[0]}; written {time.strftime('%Y-%m-%d')}.", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated project names")
    parser.add_argument("--matrix", default=str(ROOT / "docs" / "realworld.md"))
    parser.add_argument("--gradient", default=str(ROOT / "target" / "release" / "gradient"))
    parser.add_argument("--platform", help="build every tier for this platform (linux/arm64)")
    args = parser.parse_args()
    projects = tomllib.loads((ROOT / "tests" / "realworld" / "projects.toml").read_text())["project"]
    if args.only:
        wanted = set(args.only.split(","))
        projects = [p for p in projects if p["name"] in wanted]
    cache = Path(os.environ.get("GRADIENT_REALWORLD_CACHE", Path.home() / ".cache" / "gradient-realworld"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="gradient-realworld-") as work:
        work = Path(work)
        for project in projects:
            name, version = project["name"], project["version"]
            print(f"== {name} {version}", file=sys.stderr, flush=True)
            try:
                sdist = download(name, version, cache)
            except Exception as error:  # the network, or PyPI's answer
                print(f"   download failed: {error}", file=sys.stderr)
                results[name] = ({t: ("FAIL", f"download: {error}") for t in TIERS}, 0.0, "", "none")
                continue
            source = unpack(sdist, work / name)
            add_smoke(source, project)
            cells, seconds, log = build(args.gradient, source, work / "out" / name, project.get("python"), args.platform)
            source_of_versions = lock_source(work / "out" / name)
            cells = judge_lock(judge_skips(cells, project.get("skips", {})), project.get("lock"), source_of_versions)
            results[name] = (cells, seconds, log, source_of_versions)
            for tier in TIERS:
                status, detail = results[name][0][tier]
                print(f"   {tier:7} {status:4} {detail}", file=sys.stderr, flush=True)
            if any(s == "FAIL" for s, _ in results[name][0].values()):
                print(results[name][2][-3000:], file=sys.stderr)
    Path(args.matrix).write_text(matrix(projects, results, args.platform))
    failed = [n for n, (cells, _, _, _) in results.items() if any(s == "FAIL" for s, _ in cells.values())]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
