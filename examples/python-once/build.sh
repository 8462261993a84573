#!/usr/bin/env bash
# Builds examples/python-once into OUT_DIR/python-once.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/python/build.sh" "$here/handler.py" "${1:-$here/../dist}/python-once.wasm" json-handler
