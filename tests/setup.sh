#!/usr/bin/env bash
# Installs everything the test suite uses and is missing (tests/run.sh runs it
# first): every language's toolchain (examples/setup.sh --all), the emulators
# the integration tests start (tests/emulators/install.sh: kinesis-mock and
# DynamoDB Local, with Node.js and a JDK 17), and headless Chromium for the
# status page's test. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "tests/setup: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

"$root/examples/setup.sh" --all

jdk=()
command -v java >/dev/null || jdk+=(openjdk-17-jre-headless)
command -v javac >/dev/null || jdk+=(openjdk-17-jdk-headless)
command -v chromium >/dev/null || jdk+=(chromium)
if [ ${#jdk[@]} -gt 0 ]; then
  say "installing ${jdk[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${jdk[@]}" >/dev/null
fi
"$root/tests/emulators/install.sh"
