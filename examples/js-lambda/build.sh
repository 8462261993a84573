#!/usr/bin/env bash
# Builds the unchanged Lambda handler examples/js-lambda/index.mjs into
# OUT_DIR/js-lambda.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/js/build.sh" "$here/index.mjs" "${1:-$here/../dist}/js-lambda.wasm" json-handler
