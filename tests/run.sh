#!/usr/bin/env bash
# Runs the whole test suite: installs what it uses and is missing (tests/setup.sh:
# every language's toolchain, the emulators, Chromium), builds the example
# handlers into components, builds the host, then runs every unit and end-to-end
# test (release builds: the tests compile and run real components, which a debug
# wasmtime does slowly). The last line sums up every test binary's results.
#
#   tests/run.sh                 # everything
#   tests/run.sh --test mapping  # extra arguments go to `cargo test`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tests/setup.sh
examples/build.sh
# The benchmark too, so that a change that breaks it is caught here.
cargo build --release --locked -p eddy-host --bins --benches

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --locked --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{n += $1} END {print n + 0}'; }
echo "tests: $(sum passed) passed, $(sum failed) failed, $(sum ignored) skipped"
exit "$status"
