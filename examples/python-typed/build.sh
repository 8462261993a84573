#!/usr/bin/env bash
# Builds examples/python-typed into OUT_DIR/python-typed.wasm (typed world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/python/build.sh" "$here/handler.py" "${1:-$here/../dist}/python-typed.wasm" typed-handler
