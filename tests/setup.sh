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

packages=()
command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
command -v javac >/dev/null || packages+=(openjdk-17-jdk-headless)
command -v chromium >/dev/null || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
  say "installing ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null 2> >(grep -v '^debconf: delaying' >&2)
fi
"$root/tests/emulators/install.sh"
