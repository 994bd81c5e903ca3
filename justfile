# gradient's everyday commands. Each is plain cargo or a script underneath: `just` is a
# convenience, never a requirement.

# Build the release binary.
build:
    cargo build --release

# Run every test (the same command the README and CI use).
test:
    cargo test --workspace

# Benchmark against the reference tools and write docs/benchmarks.md.
bench:
    bash scripts/bench.sh

# Build well-known PyPI applications from their sdists into every tier; writes
# docs/realworld.md (needs the network to PyPI; sdists are cached between runs).
test-realworld:
    cargo build --release
    python3 tests/realworld/run.py

# Five of them built for linux/arm64 on this x86_64 machine, each arm64 artifact run under
# qemu-user; writes docs/realworld-arm64.md.
test-realworld-arm64:
    cargo build --release
    python3 tests/realworld/run.py --platform linux/arm64 --only docutils,yamllint,pyfiglet,httpie,dunamai --matrix docs/realworld-arm64.md

# Build the sample project into every available tier and print the comparison.
demo:
    cargo run --release -- build --all fixtures/sampleapp

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs: install what a fresh machine lacks, then the tests.
ci:
    bash .ci/run
