#!/usr/bin/env bash
# Builds examples/js-totals into OUT_DIR/js-totals.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/js/build.sh" "$here/handler.js" "${1:-$here/../dist}/js-totals.wasm" json-handler
