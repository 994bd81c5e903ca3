"""Time commands in turn, one run of each per round, and write hyperfine's JSON shape.

Usage: python3 scripts/interleave.py OUT.json RUNS [--warmup N] [--prepare CMD] NAME CMD [NAME CMD ...]

Start-up comparisons last tens of milliseconds and this machine's speed drifts from one
second to the next. hyperfine runs all of one command's runs before the next command's, so
a slow spell can land on one command alone; here every round runs each command once, so
a slow spell lands on all of them alike. Commands are split like a shell would split them
and run without one (as `hyperfine -N`); `--prepare` runs through the shell before every
timed run of every command (as hyperfine's). A command that fails stops the benchmark.
"""
import json
import shlex
import statistics
import subprocess
import sys
import time


def run(argv):
    started = time.perf_counter()
    status = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if status:
        sys.exit(f"interleave: `{shlex.join(argv)}` failed with exit status {status}")
    return time.perf_counter() - started


def main(args):
    out, runs, args = args[0], int(args[1]), args[2:]
    warmup, prepare = 0, None
    while args and args[0].startswith("--"):
        option, value, args = args[0], args[1], args[2:]
        if option == "--warmup":
            warmup = int(value)
        elif option == "--prepare":
            prepare = value
        else:
            sys.exit(f"interleave: unknown option {option}")
    if not args or len(args) % 2:
        sys.exit("interleave: give NAME CMD pairs")
    commands = [(args[i], shlex.split(args[i + 1])) for i in range(0, len(args), 2)]
    times = {name: [] for name, _ in commands}
    for _ in range(warmup):
        for _, argv in commands:
            run(argv)
    for _ in range(runs):
        for name, argv in commands:
            if prepare:
                if subprocess.run(prepare, shell=True).returncode:
                    sys.exit(f"interleave: the prepare command `{prepare}` failed")
            times[name].append(run(argv))
    results = [
        {"command": name, "times": t, "median": statistics.median(t), "mean": statistics.mean(t),
         "stddev": statistics.stdev(t) if len(t) > 1 else None, "min": min(t), "max": max(t)}
        for name, t in times.items()
    ]
    with open(out, "w") as file:
        json.dump({"results": results}, file)
    for result in results:
        print(f"{result['command']}: median {result['median'] * 1000:.1f} ms over {runs} runs", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
