#!/usr/bin/env bash
# Runs the whole test suite: builds the example handlers into components, builds
# the host, then runs every unit and end-to-end test (release builds: the tests
# compile and run real components, which a debug wasmtime does slowly).
#
#   tests/run.sh                 # everything
#   tests/run.sh --test mapping  # extra arguments go to `cargo test`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

examples/build.sh
cargo build --release --locked -p eddy-host
cargo test --release --locked --workspace "$@"
