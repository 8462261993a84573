#!/usr/bin/env bash
# Builds examples/js-typed into OUT_DIR/js-typed.wasm (typed world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/js/build.sh" "$here/handler.js" "${1:-$here/../dist}/js-typed.wasm" typed-handler
