#!/usr/bin/env bash
# Builds a Go program into an Eddy command handler:
#
#   guest-sdk/go/build.sh PACKAGE_DIR OUT.wasm
#
# GOOS=wasip1 (Go 1.21+) writes a WASI preview1 command: a core module with
# `_start`. Eddy turns it into a component when it loads it, and runs it once per
# batch with Lambda's event JSON on stdin, reading the response from stdout.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PACKAGE_DIR OUT.wasm" >&2; exit 2; }
dir=$(realpath "$1")
out=$(realpath -m "$2")
go=$(command -v go || ls -d /usr/lib/go-1.2[2-9]/bin/go 2>/dev/null | tail -1 || true)
if [ -z "$go" ] || ! "$go" version | grep -qE 'go1\.(2[1-9]|[3-9][0-9])'; then
  echo "go: Go 1.21 or newer is needed for GOOS=wasip1: https://go.dev/dl/ (on Debian 12: 'apt-get install -t bookworm-backports golang-1.23-go')" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
(cd "$dir" && GOOS=wasip1 GOARCH=wasm "$go" build -trimpath -o "$out" .)
echo "built $out ($(wc -c <"$out") bytes)" >&2
