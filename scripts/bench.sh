#!/usr/bin/env bash
# Benchmarks gradient against the reference tools, side by side in one run, with hyperfine
# (start-up times with scripts/interleave.py), and writes docs/benchmarks.md (medians and
# ratios). Usage: scripts/bench.sh
# Needs: hyperfine (Debian package), uv and build (pip install uv build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for tool in hyperfine uv; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install hyperfine; pip install uv build)" >&2; exit 2; }
done
python3 -c 'import build' 2>/dev/null || { echo "bench: the build module is missing (pip install build)" >&2; exit 2; }

cargo build --release --quiet
gradient="$root/target/release/gradient"
work=$(mktemp -d /tmp/gradient-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
project="$work/sampleapp"
cp -r fixtures/sampleapp "$project"
rm -rf "$project/dist" "$project/build" "$project"/src/*.egg-info
results="$work/results"
mkdir -p "$results"

# Every tool gets its own caches, so "cold" means cold for all of them alike.
export GRADIENT_CACHE_DIR="$work/cache/gradient" UV_CACHE_DIR="$work/cache/uv" PIP_CACHE_DIR="$work/cache/pip"
runs=${BENCH_RUNS:-10}
cold_runs=${BENCH_COLD_RUNS:-5}

# Start-up comparisons last tens of milliseconds and the machine's speed drifts: they run
# interleaved (scripts/interleave.py: every round runs each command once), not with
# hyperfine, which runs one command's runs back to back.
interleave() { python3 "$root/scripts/interleave.py" "$@"; }

echo "== sdist + wheel, warm (build environments cached)" >&2
hyperfine --style basic --warmup 2 --runs "$runs" --export-json "$results/wheel-warm.json" \
  -n "gradient build --to sdist,wheel --rebuild --no-smoke" "$gradient build -q --rebuild --no-smoke --to sdist,wheel $project --out $work/o2" \
  -n "gradient build --to sdist,wheel --rebuild" "$gradient build -q --rebuild --to sdist,wheel $project --out $work/o1" \
  -n "gradient build --to sdist,wheel --no-smoke (unchanged source: cached)" "$gradient build -q --no-smoke --to sdist,wheel $project --out $work/o2" \
  -n "uv build" "uv build -q $project -o $work/o3" \
  -n "python -m build" "python3 -m build -q $project -o $work/o4"

echo "== sdist + wheel, cold (every cache emptied before each run)" >&2
hyperfine --style basic --runs "$cold_runs" --export-json "$results/wheel-cold.json" \
  --prepare "rm -rf $work/cache" \
  -n "gradient build --to sdist,wheel" "$gradient build -q --to sdist,wheel $project --out $work/o1" \
  -n "uv build" "uv build -q $project -o $work/o3" \
  -n "python -m build" "python3 -m build -q $project -o $work/o4"

# The reference tools that are not ours to ship live in a venv of the bench's own.
tools="$work/tools"
uv venv --quiet --python python3 "$tools"
uv pip install --quiet --python "$tools/bin/python" shiv
# The target of the zipapp: a clean interpreter with none of the app's dependencies.
target="$work/target"
uv venv --quiet --python python3 "$target"
py="$target/bin/python"

echo "== zipapp: build from a warm wheelhouse" >&2
"$gradient" build -q --to zipapp,wheel "$project" --out "$work/z" >/dev/null
wheel=$(ls "$work"/z/*.whl)
# Finished tiers are cached by their inputs; emptying that cache makes gradient assemble the
# artifact again from its warm inputs, which is what these rows measure.
hyperfine --style basic --warmup 2 --runs "$runs" --export-json "$results/zipapp-build.json" \
  --prepare "rm -rf $GRADIENT_CACHE_DIR/tiers" \
  -n "gradient build --to zipapp --no-smoke" "$gradient build -q --no-smoke --to zipapp $project --out $work/z" \
  -n "gradient build --to zipapp" "$gradient build -q --to zipapp $project --out $work/z2" \
  -n "shiv" "$tools/bin/shiv -q -c sampleapp -o $work/shiv.pyz --reproducible $wheel"
pyz=$(ls "$work"/z/*.pyz)

echo "== zipapp: start-up of --version" >&2
export SHIV_ROOT="$work/shiv-root" XDG_CACHE_HOME="$work/xdg"
# For scale: the bare interpreter, and the same app installed in a venv (its console script).
installed="$work/installed"
uv venv --quiet --python python3 "$installed"
uv pip install --quiet --python "$installed/bin/python" --compile-bytecode "$wheel"
interleave "$results/zipapp-warm.json" $((runs * 3)) --warmup 3 \
  "gradient .pyz --version (warm)" "$py -I $pyz --version" \
  "shiv .pyz --version (warm)" "$py -I $work/shiv.pyz --version" \
  "venv console script: sampleapp --version" "$installed/bin/sampleapp --version" \
  "bare interpreter: python -I -c pass" "$py -I -c pass"
interleave "$results/zipapp-cold.json" $((runs * 2)) --prepare "rm -rf $work/shiv-root $work/xdg" \
  "gradient .pyz --version (first run)" "$py -I $pyz --version" \
  "shiv .pyz --version (first run)" "$py -I $work/shiv.pyz --version"
echo "== frozen: build from a warm wheelhouse and runtime, against PyInstaller --onefile" >&2
pyi="$work/pyi"
uv venv --quiet --python python3 "$pyi"
uv pip install --quiet --python "$pyi/bin/python" pyinstaller "$wheel"
printf 'from sampleapp.cli import main\nmain()\n' > "$work/pyi_entry.py"
export PYINSTALLER_CONFIG_DIR="$work/pyi-config"
pyinstaller_cmd="$pyi/bin/pyinstaller -F -n sampleapp-pyi --log-level ERROR --distpath $work/pyi-dist --workpath $work/pyi-work --specpath $work/pyi-spec $work/pyi_entry.py"
"$gradient" build -q --no-smoke --to frozen "$project" --out "$work/f" >/dev/null
# PyInstaller's work folder holds its previous analysis and makes a rebuild incremental;
# it is emptied before each run, as in a clean release build. Its global cache stays warm.
hyperfine --style basic --warmup 1 --runs 5 --export-json "$results/frozen-build.json" \
  --prepare "rm -rf $work/pyi-work $work/pyi-dist $GRADIENT_CACHE_DIR/tiers" \
  -n "gradient build --to frozen --no-smoke" "$gradient build -q --no-smoke --to frozen $project --out $work/f" \
  -n "gradient build --to frozen" "$gradient build -q --to frozen $project --out $work/f2" \
  -n "pyinstaller --onefile" "$pyinstaller_cmd"
frozen=$(ls "$work"/f/*-linux-x86_64)
pyinstaller_exe="$work/pyi-dist/sampleapp-pyi"
interleave "$results/frozen-warm.json" $((runs * 3)) --warmup 3 \
  "gradient frozen --version (warm)" "$frozen --version" \
  "pyinstaller onefile --version" "$pyinstaller_exe --version" \
  "venv console script: sampleapp --version" "$installed/bin/sampleapp --version"
interleave "$results/frozen-cold.json" $((runs * 2)) --prepare "rm -rf $work/xdg/gradient/frozen" \
  "gradient frozen --version (first run)" "$frozen --version" \
  "pyinstaller onefile --version (every run unpacks)" "$pyinstaller_exe --version"

echo "== container: against docker build (BuildKit) on a locally made Debian python base" >&2
image_sizes="{}"
if docker_cli=/usr/bin/docker && "$docker_cli" version >/dev/null 2>&1; then
  base=gradient-bench-debian-python:12
  if ! "$docker_cli" image inspect "$base" >/dev/null 2>&1; then
    # Made once from Debian's packages and kept: no registry is reachable.
    cached="${XDG_CACHE_HOME_OUTER:-$HOME/.cache}/gradient-bench/debian-python.tar"
    if [ ! -f "$cached" ]; then
      command -v mmdebstrap >/dev/null || { echo "bench: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 2; }
      mkdir -p "$(dirname "$cached")"
      # --format=tar: mmdebstrap picks its output's format from the file name's extension,
      # and `.tmp` is none it knows, so it would write a folder that `docker import` rejects.
      mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$cached.tmp" - \
        < /etc/apt/sources.list.d/debian.sources
      mv "$cached.tmp" "$cached"
    fi
    "$docker_cli" import "$cached" "$base" >/dev/null
  fi
  # The reference flow: the same locked dependencies as wheels, then the app's wheel, each
  # in its own Dockerfile step so an app change rebuilds only the last one.
  ctx="$work/docker-ctx"
  mkdir -p "$ctx/deps"
  lock=$(ls "$work"/z/*.lock.txt)
  python3 -m pip download --quiet --no-deps --only-binary :all: -r "$lock" -d "$ctx/deps"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $base
COPY deps/ /tmp/deps/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet --no-index --no-deps /tmp/deps/*.whl && rm -rf /tmp/deps
COPY app/ /tmp/app/
RUN /opt/venv/bin/pip install --quiet --no-index --no-deps /tmp/app/*.whl && rm -rf /tmp/app
ENTRYPOINT ["/opt/venv/bin/sampleapp"]
DOCKERFILE
  reference="rm -rf $ctx/app && uv build -q --wheel $project -o $ctx/app && DOCKER_BUILDKIT=1 $docker_cli build -q -t gradient-bench-reference $ctx"
  # Each app-change run writes a new greeting, so both flows rebuild the app.
  printf 'printf "Hello %%s, {name}!\\n" "$(date +%%s%%N)" > %s/src/sampleapp/data/greeting.txt\n' "$project" > "$work/change-app.sh"
  hyperfine --style basic --runs "$cold_runs" --export-json "$results/docker-cold.json" \
    --prepare "rm -rf $GRADIENT_CACHE_DIR/oci $GRADIENT_CACHE_DIR/dists $GRADIENT_CACHE_DIR/tiers; $docker_cli builder prune -af >/dev/null" \
    -n "gradient build --to docker --no-smoke (layer cache emptied)" "$gradient build -q --no-smoke --to docker $project --out $work/d" \
    -n "uv build --wheel + docker build --no-cache" "$reference --no-cache"
  hyperfine --style basic --runs "$runs" --export-json "$results/docker-change.json" \
    --prepare "bash $work/change-app.sh" \
    -n "gradient build --to docker --no-smoke (one app file changed)" "$gradient build -q --no-smoke --to docker $project --out $work/d" \
    -n "uv build --wheel + docker build (one app file changed)" "$reference"
  image_sizes=$(printf '{"gradient image": %s, "docker build image": %s}' \
    "$("$docker_cli" image inspect -f '{{.Size}}' sampleapp:1.2.3)" \
    "$("$docker_cli" image inspect -f '{{.Size}}' gradient-bench-reference)")
else
  echo "bench: no Docker engine answers; the container comparison is left out" >&2
fi
echo "== container for linux/arm64: assembled on this x86_64 host, against the amd64 image and against docker build under QEMU" >&2
if "$docker_cli" version >/dev/null 2>&1 && [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  # Warm inputs for both platforms (Debian's arm64 CPython root, both runtimes, both
  # wheelhouses, the layer cache); each run then assembles its image again.
  "$gradient" build -q --no-smoke --to oci --platform linux/amd64,linux/arm64 "$project" --out "$work/a64" >/dev/null
  base64=gradient-bench-debian-python-arm64:12
  if ! "$docker_cli" image inspect "$base64" >/dev/null 2>&1; then
    # Made once from Debian's arm64 packages (their maintainer scripts run under qemu-user)
    # and kept: no registry is reachable.
    cached="${XDG_CACHE_HOME_OUTER:-$HOME/.cache}/gradient-bench/debian-python-arm64.tar"
    if [ ! -f "$cached" ]; then
      mkdir -p "$(dirname "$cached")"
      mmdebstrap --quiet --arch=arm64 --format=tar --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$cached.tmp" - \
        < /etc/apt/sources.list.d/debian.sources
      mv "$cached.tmp" "$cached"
    fi
    # `docker import --platform` is ignored by Docker 20.10 (the image says amd64): the
    # root is added to an empty arm64 image by BuildKit instead.
    mkdir -p "$work/base64"
    ln -f "$cached" "$work/base64/rootfs.tar" 2>/dev/null || cp "$cached" "$work/base64/rootfs.tar"
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n' > "$work/base64/Dockerfile"
    DOCKER_BUILDKIT=1 "$docker_cli" build -q --platform linux/arm64 -t "$base64" "$work/base64" >/dev/null
  fi
  # The conventional route: the same pinned versions as arm64 wheels, installed by pip
  # running under QEMU in `docker build --platform linux/arm64`, then the app's wheel.
  ctx64="$work/docker-ctx-arm64"
  mkdir -p "$ctx64/deps" "$ctx64/app"
  grep -oE '^[A-Za-z0-9_.-]+==[^ ;\\]+' "$(ls "$work"/a64/*.lock.txt)" > "$ctx64/pins.txt"
  python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp -r "$ctx64/pins.txt" -d "$ctx64/deps"
  uv build -q --wheel "$project" -o "$ctx64/app"
  sed "s|^FROM .*|FROM $base64|" "$ctx/Dockerfile" > "$ctx64/Dockerfile"
  hyperfine --style basic --warmup 1 --runs "$cold_runs" --export-json "$results/arm64-image.json" \
    --prepare "rm -rf $GRADIENT_CACHE_DIR/tiers" \
    -n "gradient build --to oci --platform linux/arm64 --no-smoke (warm)" "$gradient build -q --no-smoke --to oci --platform linux/arm64 $project --out $work/a64" \
    -n "gradient build --to oci --platform linux/amd64 --no-smoke (warm)" "$gradient build -q --no-smoke --to oci --platform linux/amd64 $project --out $work/a64-amd64" \
    -n "docker build --platform linux/arm64 --no-cache (under QEMU)" "DOCKER_BUILDKIT=1 $docker_cli build -q --platform linux/arm64 --no-cache -t gradient-bench-reference-arm64 $ctx64"
else
  echo "bench: no Docker engine or no qemu-aarch64 under binfmt_misc; the arm64 comparison is left out" >&2
fi
echo "$image_sizes" > "$results/image-sizes.json"
# The app-change runs rewrote the greeting; later smoke tests expect the fixture's own.
cp fixtures/sampleapp/src/sampleapp/data/greeting.txt "$project/src/sampleapp/data/greeting.txt"

echo "== deb: against a hand-made venv + dpkg-deb package" >&2
if command -v dpkg-deb >/dev/null; then
  # The reference: a venv under /opt/NAME with the same locked wheels and the app's wheel,
  # a control file, and dpkg-deb --build (its default compression). No lintian-clean extras.
  pkg="$work/venv-deb"
  mkdir -p "$pkg-wheels"
  lock=$(ls "$work"/z/*.lock.txt)
  python3 -m pip download --quiet --no-deps --only-binary :all: -r "$lock" -d "$pkg-wheels"
  uv build -q --wheel "$project" -o "$pkg-wheels"
  cat > "$work/venv-deb.sh" <<SCRIPT
set -e
rm -rf $pkg && mkdir -p $pkg/DEBIAN $pkg/usr/bin
python3 -m venv --without-pip $pkg/opt/sampleapp
uv pip install -q --offline --no-index --find-links $pkg-wheels --python $pkg/opt/sampleapp/bin/python sampleapp
ln -s /opt/sampleapp/bin/sampleapp $pkg/usr/bin/sampleapp
printf 'Package: sampleapp\nVersion: 1.2.3-1\nArchitecture: amd64\nMaintainer: Gradient Maintainers <maintainers@gradient.invalid>\nDescription: sample application\n' > $pkg/DEBIAN/control
dpkg-deb --build --root-owner-group $pkg $work/venv.deb >/dev/null
SCRIPT
  $gradient build -q --no-smoke --to deb "$project" --out "$work/p" >/dev/null
  hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$results/deb-build.json" \
    --prepare "rm -rf $GRADIENT_CACHE_DIR/tiers" \
    -n "gradient build --to deb --no-smoke" "$gradient build -q --no-smoke --to deb $project --out $work/p" \
    -n "gradient build --to deb --rebuild --no-smoke" "$gradient build -q --rebuild --no-smoke --to deb $project --out $work/p" \
    -n "venv + dpkg-deb --build" "bash $work/venv-deb.sh"
else
  echo "bench: dpkg-deb is missing; the deb comparison is left out" >&2
fi

echo "== the whole gradient: a rebuild with nothing changed" >&2
"$gradient" build -q --all "$project" --out "$work/all" >/dev/null
hyperfine --style basic -N --warmup 2 --runs $((runs * 2)) --export-json "$results/all-noop.json" \
  -n "gradient build --all (nothing changed)" "$gradient build -q --all $project --out $work/all"

echo "== the lock step: a warm build --all from the project's uv.lock, against --no-lock" >&2
# Both rebuild nothing; one reads, selects and judges fixtures/uvlock-app's uv.lock, the
# other reuses the pylock.toml its last resolution published. Without smoke tests: the
# fixture's own smoke test expects the locked click, which --no-lock does not ship.
locked=fixtures/uvlock-app
"$gradient" build -q --all --no-smoke "$locked" --out "$work/locked" >/dev/null
"$gradient" build -q --all --no-smoke --no-lock "$locked" --out "$work/unlocked" >/dev/null
hyperfine --style basic -N --warmup 2 --runs $((runs * 2)) --export-json "$results/lock-noop.json" \
  -n "gradient build --all (from uv.lock)" "$gradient build -q --all --no-smoke $locked --out $work/locked" \
  -n "gradient build --all --no-lock" "$gradient build -q --all --no-smoke --no-lock $locked --out $work/unlocked"

echo "== the whole gradient, cold, against every reference tool: gradient compare --peers" >&2
# The peers' tools in a venv of their own, first on PATH; the docker peer starts from the
# same Debian python base as the container rows, built by the client that has BuildKit.
peers="$work/peers"
uv venv --quiet --python python3 "$peers"
uv pip install --quiet --python "$peers/bin/python" shiv pex pyinstaller
mkdir -p "$work/peer-bin"
[ -x /usr/bin/docker ] && ln -sf /usr/bin/docker "$work/peer-bin/docker"
peer_base=()
"$docker_cli" image inspect gradient-bench-debian-python:12 >/dev/null 2>&1 && peer_base=(--peer-base gradient-bench-debian-python:12)
for run in $(seq 1 "$cold_runs"); do
  # gradient on an empty cache of its own (--cold); uv's and pip's download caches warm.
  PATH="$work/peer-bin:$peers/bin:$PATH" /usr/bin/time -f "%M" -o "$results/compare-rss-$run.txt" \
    "$gradient" compare -q --peers --cold --no-smoke "${peer_base[@]}" --json "$project" --out "$work/cmp" \
    > "$results/compare-$run.json"
done

python3 - "$pyz" "$work/shiv.pyz" "$frozen" "$pyinstaller_exe" > "$results/sizes.json" <<'PY'
import json, os, sys
names = ["gradient .pyz", "shiv .pyz", "gradient frozen", "pyinstaller onefile"]
print(json.dumps({name: os.path.getsize(path) for name, path in zip(names, sys.argv[1:])}))
PY

python3 scripts/bench_report.py "$results" > docs/benchmarks.md

cat docs/benchmarks.md
