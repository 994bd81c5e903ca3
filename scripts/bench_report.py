"""Turn hyperfine's JSON exports into docs/benchmarks.md: medians and ratios.

Usage: python3 scripts/bench_report.py RESULTS_DIR > docs/benchmarks.md
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

SCENARIOS = [
    ("wheel-warm", "sdist + wheel of fixtures/sampleapp, warm (build environments cached)",
     ["uv build", "python -m build"]),
    ("wheel-cold", "sdist + wheel of fixtures/sampleapp, cold (every tool's caches emptied before each run)",
     ["uv build", "python -m build"]),
    ("zipapp-build", "zipapp of fixtures/sampleapp from a warm wheelhouse (shiv gets the same wheel and a warm pip cache)",
     ["shiv"]),
    ("zipapp-warm", "zipapp start-up, `--version`, warm, on a clean interpreter (a fresh venv's python -I)",
     ["shiv .pyz --version (warm)", "venv console script: sampleapp --version"]),
    ("zipapp-cold", "zipapp start-up, `--version`, first run (extraction caches emptied before each run)",
     ["shiv .pyz --version (first run)"]),
    ("frozen-build", "frozen executable of fixtures/sampleapp from a warm wheelhouse and runtime (PyInstaller gets the same wheel installed and its own warm cache)",
     ["pyinstaller --onefile"]),
    ("frozen-warm", "frozen start-up, `--version`, warm",
     ["pyinstaller onefile --version", "venv console script: sampleapp --version"]),
    ("frozen-cold", "frozen start-up, `--version`, first run (gradient's extraction cache emptied before each run; PyInstaller unpacks on every run)",
     ["pyinstaller onefile --version (every run unpacks)"]),
    ("docker-cold", "container image, cold: gradient's layer and distribution caches emptied, BuildKit's cache pruned (`--no-cache`); both start from a local base (gradient: the runtime bundle; docker: a Debian python image made with mmdebstrap) and the same locked wheels",
     ["uv build --wheel + docker build --no-cache"]),
    ("docker-change", "container image, rebuild after one app file changed (wheel rebuilt by both; docker reuses its dependency step, gradient its cached layers)",
     ["uv build --wheel + docker build (one app file changed)"]),
    ("arm64-image", "container image for linux/arm64, assembled on this x86_64 host from a warm cache (`--platform linux/arm64`), against the same image for linux/amd64 and against the conventional route: a Dockerfile installing the same pinned versions' arm64 wheels on an arm64 Debian python base (made with `mmdebstrap --arch=arm64`), `docker build --platform linux/arm64 --no-cache` with every RUN under QEMU",
     ["gradient build --to oci --platform linux/amd64 --no-smoke (warm)", "docker build --platform linux/arm64 --no-cache (under QEMU)"]),
    ("deb-build", "Debian package of fixtures/sampleapp, warm wheelhouse and runtime, the package written anew (the reference: a venv with the same wheels and `dpkg-deb --build`)",
     ["venv + dpkg-deb --build"]),
    ("all-noop", "every tier (`build --all`, smoke tests included) when nothing changed since the last run", []),
    ("lock-noop", "the lock step: every tier of fixtures/uvlock-app (`build --all --no-smoke`) when nothing changed, its versions read from its uv.lock (selected, judged current) or, with `--no-lock`, from the pylock.toml its last resolution published",
     ["gradient build --all --no-lock"]),
]


def version(command):
    try:
        line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        return line.split(" (")[0]

    except Exception:
        return "unknown"


def main(results_dir):
    results_dir = Path(results_dir)
    out = ["# Benchmarks", "",
           "Written by `just bench` (`scripts/bench.sh`), which runs every tool side by side in one",
           "run with hyperfine; start-up times are interleaved instead (`scripts/interleave.py`: each",
           "round runs every command once), so that a slow spell of the machine lands on all of them.",
           "The machine is shared and noisy: read the ratios, not the absolute times.",
           "Ratios are gradient's median divided by the reference tool's median (below 1 is faster).",
           "",
           f"- machine: {os.cpu_count()} cores, {platform.machine()}, {platform.platform()}",
           f"- {version(['target/release/gradient', '--version'])}; {version(['uv', '--version'])}; "
           f"{version(['python3', '-m', 'build', '--version'])}; Python {platform.python_version()}",
           ""]
    for key, title, references in SCENARIOS:
        path = results_dir / f"{key}.json"
        if not path.exists():
            continue
        results = {r["command"]: r for r in json.loads(path.read_text())["results"]}
        out += [f"## {title}", "",
                "| " + " | ".join(["command", "median", "mean ± σ", "runs"] + [f"ratio to {r}" for r in references]) + " |",
                "|---|---|---|---|" + "---|" * len(references)]
        for name, result in results.items():
            ratios = []
            for reference in references:
                if reference in results and name.startswith("gradient"):
                    ratios.append(f"{result['median'] / results[reference]['median']:.2f}×")
                else:
                    ratios.append("")
            cells = [f"`{name}`", f"{result['median']:.3f} s", f"{result['mean']:.3f} ± {result['stddev'] or 0:.3f} s",
                     str(len(result['times']))] + ratios
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    compares = sorted(results_dir.glob("compare-[0-9]*.json"))
    if compares:
        runs = [json.loads(p.read_text()) for p in compares]
        rss = [int(p.read_text().split()[-1]) * 1024 for p in sorted(results_dir.glob("compare-rss-*.txt"))]
        median = lambda xs: sorted(xs)[len(xs) // 2]
        ours = median([r["gradient"]["seconds"] for r in runs])
        theirs = median([r["peers_seconds"] for r in runs])
        out += ["## The whole gradient, cold, against the reference tools (`gradient compare --peers --cold --no-smoke`)", "",
                f"Medians of {len(runs)} runs. gradient builds all {len(runs[0]['gradient']['tiers'])} tiers in one run on an empty",
                "cache of its own (uv's and pip's download caches warm); each reference tool then builds the same",
                "project from its source, one after another.", "",
                "| tool | tiers | median | runs |", "|---|---|---|---|",
                f"| gradient ({', '.join(runs[0]['gradient']['tiers'])}) | all | {ours:.2f} s | {len(runs)} |"]
        for index, peer in enumerate(runs[0]["peers"]):
            times = [r["peers"][index]["seconds"] for r in runs if r["peers"][index]["status"] == "built"]
            cell = f"{median(times):.2f} s" if times else f"not run: {(peer['reason'] or '').splitlines()[0]}"
            version_text = f" {peer['version']}" if peer.get("version") else ""
            out.append(f"| {peer['name']}{version_text} | {', '.join(peer['tiers'])} | {cell} | {len(times)} |")
        out += ["", f"- the reference tools' times added up: {theirs:.2f} s (median of the per-run sums)",
                f"- **gradient: {ours / theirs:.2f}× their sum**",
                f"- gradient's peak memory: {median([r['gradient']['peak_memory_bytes'] for r in runs]) / 2**20:.0f} MiB"
                " (the process's own high-water mark)"
                + (f"; {median(rss) / 2**20:.0f} MiB for the largest process of its tree (`/usr/bin/time`, including the"
                   " peers it ran)" if rss else ""),
                ""]
    sizes = results_dir / "sizes.json"
    if sizes.exists():
        data = json.loads(sizes.read_text())
        out += ["## Sizes", "",
                "| file | bytes | ratio to the reference |", "|---|---|---|"]
        for ours, theirs in [("gradient .pyz", "shiv .pyz"), ("gradient frozen", "pyinstaller onefile")]:
            if ours in data and theirs in data:
                out.append(f"| {ours} | {data[ours]} | {data[ours] / data[theirs]:.2f}× {theirs} |")
                out.append(f"| {theirs} | {data[theirs]} | |")
        out.append("")
    images = results_dir / "image-sizes.json"
    if images.exists():
        data = json.loads(images.read_text())
        if data:
            out += ["## Image sizes (as the engine reports them, uncompressed)", "",
                    "| image | bytes | ratio |", "|---|---|---|",
                    f"| gradient (scratch base) | {data['gradient image']} | {data['gradient image'] / data['docker build image']:.2f}× docker build |",
                    f"| docker build on Debian python | {data['docker build image']} | |", ""]
    out += ["## What the commands do", "",
            "- `gradient build --to sdist,wheel --rebuild` runs the backend's hooks every time, like the reference",
            "  tools: the sdist, then the wheel from the unpacked sdist, then (for the sdist's smoke test) the wheel from",
            "  the source tree; it normalises and validates both files. Without `--no-smoke` it also smoke-tests them",
            "  (the wheel installed into a fresh virtual environment and its console script run).",
            "- Without `--rebuild`, an unchanged source tree reuses the cached sdist and wheel: no hook runs.",
            "- `uv build` and `python -m build` build the sdist, then the wheel from it, and do nothing more.",
            "- `gradient build --to zipapp` with warm caches reuses the cached wheel (the source is unchanged), the",
            "  lock and the installed wheelhouse, and assembles the .pyz; without `--no-smoke` it also runs the smoke",
            "  tests (through the #! line, with `python -I`, and two concurrent first runs).",
            "- `shiv -c sampleapp --reproducible WHEEL` installs the wheel and its dependencies with pip (warm cache)",
            "  into a temporary site-packages and zips it.",
            "- `gradient build --to frozen` with warm caches reuses the wheel, the wheelhouse and the runtime bundle (whose",
            "  compressed part is kept), compiles site-packages and writes the executable; `pyinstaller -F` analyses and",
            "  packs the same app, installed from the same wheel into a venv, with its own cache warm.",
            "- The frozen executable's first run extracts its payload once (later runs exec straight away); PyInstaller's",
            "  onefile unpacks into a temporary folder on every run.",
            "- Start-up runs `python -I APP.pyz --version` with a fresh venv's interpreter. Warm: the extraction cache",
            "  is filled. First run: `SHIV_ROOT` and `XDG_CACHE_HOME` are emptied before each run, so shiv extracts",
            "  everything and gradient extracts msgpack's compiled module and caches compiled code.",
            "- The start-up comparisons (zipapp and frozen, warm and first run) are interleaved by",
            "  `scripts/interleave.py`: each round runs every command once, so a slow spell of this shared machine",
            "  lands on all of them, where hyperfine would run one command's runs back to back. Warm rows have three",
            "  times the runs of the other rows, first-run rows twice.",
            "- `gradient build --to docker` builds the wheel, makes (or reuses) the image layers, writes the tarball and",
            "  loads it into the engine through its API (not when the engine has the image already). Cold, the base and",
            "  runtime layers are compressed on both cores while the wheel builds; after an app change, the base, runtime",
            "  and dependency layers come from the layer cache by their recipe. The reference builds the wheel with `uv build --wheel`, then",
            "  `docker build` (Debian's docker.io, BuildKit) of a Dockerfile that installs the same locked wheels into a",
            "  venv on the Debian python base, then the app's wheel in a step of its own.",
            "- Build rows of the zipapp, frozen, container and deb tiers empty gradient's cache of finished tiers before",
            "  each run, so the artifact is really assembled again (from warm inputs unless said otherwise).",
            "- `gradient build --to deb` reuses the wheel, the wheelhouse, the stripped runtime and the runtime's",
            "  compressed part of `data.tar.gz`, lays out the package, compresses the app and its dependencies after that",
            "  part and writes the .deb (gzip); `--rebuild` also rebuilds the wheel through the backend. The reference makes a",
            "  venv under /opt with `uv pip install` from the same wheels (offline), writes a minimal control file and",
            "  runs `dpkg-deb --build` (xz by default): a package that needs the host's python3 and draws lintian errors.",
            "- `gradient compare --peers --cold --no-smoke` runs `gradient build --all --no-smoke` on an empty gradient",
            "  cache (uv's and pip's download caches warm: every tool downloads nothing), timed whole, then each reference",
            "  tool from the project's source, one after another (see docs/guide.md, Comparing with other tools). gradient",
            "  builds all eight tiers, rpm included, which has no peer.",
            "- `gradient build --to oci --platform linux/arm64` on this x86_64 host reuses Debian's arm64 CPython root,",
            "  the arm64 runtime bundle, the arm64 wheelhouse (its resolution kept from the last run) and the layer cache,",
            "  and writes the arm64 image's tarball; the amd64 row does the same for the host's platform. The reference",
            "  downloads the same pinned versions' arm64 wheels once, then `docker build --platform linux/arm64 --no-cache`",
            "  runs the same Dockerfile as the container rows on an arm64 Debian python base (mmdebstrap --arch=arm64,",
            "  added to an empty arm64 image by BuildKit), its pip and venv steps under QEMU.",
            "- `gradient build --all` with nothing changed reuses every finished tier, with its smoke result, and checks",
            "  that the engine still has the image; it builds and runs nothing.",
            ""]

    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
