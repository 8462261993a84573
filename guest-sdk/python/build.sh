#!/usr/bin/env bash
# Builds a Python handler into an Eddy component:
#
#   guest-sdk/python/build.sh HANDLER.py OUT.wasm [json-handler|typed-handler]
#
# HANDLER.py either defines the world's export class (`Json` or `Typed`, made
# with the helpers of eddy_handler) or is a file written for Lambda's Python
# runtime (`def lambda_handler(event, context)`), which is wrapped as it is, with
# `logging` set up as Lambda sets it up (INFO, to the log). componentize-py
# makes the component; it is installed with pip on first use.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 HANDLER.py OUT.wasm [json-handler|typed-handler]" >&2; exit 2; }
entry=$(realpath "$1")
out=$(realpath -m "$2")
world=${3:-json-handler}
wit=$(realpath "${EDDY_WIT:-$sdk/../../wit}")
module=$(basename "$entry" .py)

if ! command -v componentize-py >/dev/null; then
  command -v python3 >/dev/null || { echo "python: Python 3.10+ is needed" >&2; exit 1; }
  echo "python: installing componentize-py 0.25.1 with pip" >&2
  python3 -m pip install --quiet componentize-py==0.25.1 || python3 -m pip install --quiet --user componentize-py==0.25.1
  hash -r
  command -v componentize-py >/dev/null || { echo "python: componentize-py is installed but not on PATH" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $world in
  json-handler) export_name=Json; wrap="eddy_handler.lambda_handler(getattr(_user, 'lambda_handler', None) or getattr(_user, 'handler', None))" ;;
  typed-handler) export_name=Typed; wrap="None" ;;
  *) echo "python: the world is json-handler or typed-handler, not $world" >&2; exit 2 ;;
esac
# The app module may not be named after the world (componentize-py's rule).
cat >"$work/eddy_app.py" <<PY
import logging
import sys

# As Lambda's Python runtime: the root logger at INFO, writing to the log.
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="[%(levelname)s] %(message)s")

import eddy_handler
import $module as _user

$export_name = getattr(_user, "$export_name", None) or $wrap
if $export_name is None:
    raise RuntimeError("$module defines no $export_name")
PY
mkdir -p "$(dirname "$out")"
(cd "$work" && componentize-py -d "$wit" -w "$world" componentize eddy_app \
  -p "$work" -p "$sdk" -p "$(dirname "$entry")" -o "$out" >/dev/null)
echo "built $out ($(wc -c <"$out") bytes)" >&2
