#!/usr/bin/env bash
# Builds examples/go-totals into OUT_DIR/go-totals.wasm (a WASI command).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/go/build.sh" "$here" "${1:-$here/../dist}/go-totals.wasm"
