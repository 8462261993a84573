#!/usr/bin/env bash
# Builds examples/c-totals into OUT_DIR/c-totals.wasm (typed world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/c/build.sh" "$here/handler.c" "${1:-$here/../dist}/c-totals.wasm" typed-handler
