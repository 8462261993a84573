#!/usr/bin/env bash
# Builds the unchanged Lambda handler examples/python-lambda/lambda_function.py
# into OUT_DIR/python-lambda.wasm (JSON world).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../../guest-sdk/python/build.sh" "$here/lambda_function.py" "${1:-$here/../dist}/python-lambda.wasm" json-handler
