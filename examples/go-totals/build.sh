#!/usr/bin/env bash
# Builds the Go command handler: GOOS=wasip1 writes a WASI preview1 command (a
# core module with `_start`), which Eddy turns into a component when it loads.
#   examples/go-totals/build.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../dist}
go=$(command -v go || ls -d /usr/lib/go-1.2[2-9]/bin/go 2>/dev/null | tail -1 || true)
[ -n "$go" ] || { echo "go-totals: Go 1.21 or newer is needed (GOOS=wasip1): https://go.dev/dl/, or on Debian 12 'apt-get install -t bookworm-backports golang-1.23-go'" >&2; exit 1; }
mkdir -p "$out"
cd "$here"
GOOS=wasip1 GOARCH=wasm "$go" build -trimpath -o "$out/go-totals.wasm" .
echo "built $out/go-totals.wasm ($(wc -c <"$out/go-totals.wasm") bytes)" >&2
