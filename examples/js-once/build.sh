#!/usr/bin/env bash
# Builds examples/js-once into OUT_DIR/js-once.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/js/build.sh" "$here/handler.js" "${1:-$here/../dist}/js-once.wasm" json-handler
