#!/usr/bin/env bash
# Builds a JavaScript handler into an Eddy component:
#
#   guest-sdk/js/build.sh HANDLER.js OUT.wasm [json-handler|typed-handler]
#
# HANDLER.js either exports the world's interface (`json` or `typed`, made with
# the helpers of eddy.js) or is a file written for Lambda's Node.js runtime
# (`export const handler = async (event, context) => ...`, or `exports.handler`),
# which is wrapped as it is. esbuild bundles it with what it imports (npm
# packages included) into one module; `jco componentize` makes the component.
# The toolchain is installed into guest-sdk/js/node_modules on first use.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 HANDLER.js OUT.wasm [json-handler|typed-handler]" >&2; exit 2; }
entry=$(realpath "$1")
out=$2
world=${3:-json-handler}
wit=${EDDY_WIT:-$sdk/../../wit}

command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "js: Node.js 18+ and npm are needed (https://nodejs.org, or 'apt-get install nodejs npm')" >&2; exit 1; }
if [ ! -x "$sdk/node_modules/.bin/jco" ] || [ ! -x "$sdk/node_modules/.bin/esbuild" ]; then
  echo "js: installing jco and esbuild into $sdk/node_modules" >&2
  # `npm install` rather than `npm ci`: npm 11's `ci` refuses a lock file that
  # leaves out other platforms' optional packages; `install` keeps to the lock.
  (cd "$sdk" && npm install --no-audit --no-fund --loglevel=error)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $world in
  json-handler) export_line="export const json = user.json ?? lambdaHandler(user.handler ?? user.default?.handler);" ;;
  typed-handler) export_line="export const typed = user.typed;" ;;
  *) echo "js: the world is json-handler or typed-handler, not $world" >&2; exit 2 ;;
esac
cat >"$work/entry.js" <<JS
import '$sdk/node-globals.js';
import * as user from '$entry';
import { lambdaHandler } from '$sdk/eddy.js';
$export_line
JS
"$sdk/node_modules/.bin/esbuild" "$work/entry.js" --bundle --format=esm --platform=neutral \
  --main-fields=module,main --alias:eddy-handler="$sdk/eddy.js" --external:'eddy:*' --external:'wasi:*' --log-level=warning --log-override:import-is-undefined=silent \
  --outfile="$work/bundle.js"
mkdir -p "$(dirname "$out")"
"$sdk/node_modules/.bin/jco" componentize "$work/bundle.js" --wit "$wit" -n "$world" -o "$out" >/dev/null
echo "built $out ($(wc -c <"$out") bytes)" >&2
