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
]


def version(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except Exception:
        return "unknown"


def main(results_dir):
    results_dir = Path(results_dir)
    out = ["# Benchmarks", "",
           "Written by `just bench` (`scripts/bench.sh`), which runs every tool side by side in one",
           "run with hyperfine. The machine is shared and noisy: read the ratios, not the absolute times.",
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
                "| command | median | mean ± σ | runs | " + " | ".join(f"ratio to {r}" for r in references) + " |",
                "|---|---|---|---|" + "---|" * len(references)]
        for name, result in results.items():
            ratios = []
            for reference in references:
                if reference in results and name.startswith("gradient"):
                    ratios.append(f"{result['median'] / results[reference]['median']:.2f}×")
                else:
                    ratios.append("")
            out.append(f"| `{name}` | {result['median']:.3f} s | {result['mean']:.3f} ± {result['stddev'] or 0:.3f} s "
                       f"| {len(result['times'])} | " + " | ".join(ratios) + " |")
        out.append("")
    out += ["## What the commands do", "",
            "- `gradient build --to sdist,wheel` builds the sdist, then the wheel from the unpacked sdist, normalises",
            "  both, validates them and smoke-tests them (the wheel is installed into a fresh virtual environment and",
            "  its console script run). `--no-smoke` leaves out the smoke tests, for a like-for-like build comparison.",
            "- `uv build` and `python -m build` build the sdist, then the wheel from it, and do nothing more.",
            ""]
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
