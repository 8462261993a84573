#!/usr/bin/env bash
# Builds examples/python-totals into OUT_DIR/python-totals.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/python/build.sh" "$here/handler.py" "${1:-$here/../dist}/python-totals.wasm" json-handler
