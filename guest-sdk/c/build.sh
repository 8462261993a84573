#!/usr/bin/env bash
# Builds a C handler into an Eddy component:
#
#   guest-sdk/c/build.sh HANDLER.c OUT.wasm [typed-handler|json-handler]
#
# wit-bindgen's C generator writes the world's C bindings (<world>.h, <world>.c and the
# component-type object); clang compiles them with the handler for wasm32-wasi
# as a reactor against Debian's wasi-libc (or WASI_SYSROOT).
# Include "typed_handler.h" (or "json_handler.h") in the handler.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 HANDLER.c OUT.wasm [typed-handler|json-handler]" >&2; exit 2; }
entry=$(realpath "$1")
out=$(realpath -m "$2")
world=${3:-typed-handler}
wit=$(realpath "${EDDY_WIT:-$sdk/../../wit}")
sysroot=${WASI_SYSROOT:-/usr}
clang=$(command -v clang-19 || command -v clang || true)
need() { echo "c: $1 is needed: $2" >&2; exit 1; }
[ -n "$clang" ] || need "clang with the wasm32 target" "apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc"
# clang links wasm32 with wasm-ld, which Debian ships in lld-19, beside clang-19.
[ -x "$(dirname "$(realpath "$clang")")/wasm-ld" ] || command -v wasm-ld >/dev/null ||
  need "wasm-ld, the wasm32 linker" "apt-get install lld-19"
[ -d "$sysroot/lib/wasm32-wasi" ] || [ -d "$sysroot/lib/wasm32-wasip1" ] || need "wasi-libc" "apt-get install wasi-libc (or WASI_SYSROOT=<wasi-sdk sysroot>)"
# The bindings come from `wit-bindgen c` where it is installed, else from the
# SDK's own copy of its C generator (guest-sdk/c/bindgen), which cargo builds
# once (about a minute) into ~/.cache/eddy/tools/target (or $EDDY_TOOLS_DIR).
wit_bindgen=$(command -v wit-bindgen || true)
[ -n "$wit_bindgen" ] || command -v cargo >/dev/null ||
  need "wit-bindgen (or cargo, to build the SDK's C generator)" "install Rust (rustup), or cargo install wit-bindgen-cli --locked"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$wit_bindgen" ]; then
  "$wit_bindgen" c "$wit" --world "$world" --out-dir "$work" >"$work/bindgen.log" 2>&1
else
  # A target directory of its own: never the one a running `cargo test` holds.
  CARGO_TARGET_DIR=${EDDY_TOOLS_DIR:-$HOME/.cache/eddy/tools}/target \
    cargo run --quiet --release --locked --manifest-path "$sdk/bindgen/Cargo.toml" -- "$wit" "$world" "$work" >"$work/bindgen.log" 2>&1
fi || { cat "$work/bindgen.log" >&2; exit 1; }
binding=${world//-/_}
# -mexec-model=reactor: a library of exports, no main. The preview1 imports of
# wasi-libc are adapted to WASI 0.2 by the reactor adapter.
"$clang" --target=wasm32-wasi --sysroot="$sysroot" -mexec-model=reactor -O2 -Wall -Werror \
  -I "$work" -o "$work/core.wasm" "$entry" "$work/$binding.c" "$work/${binding}_component_type.o"
mkdir -p "$(dirname "$out")"
# The core module, as clang wrote it: it carries its component type, and Eddy
# makes it a component when it loads it (with the preview1 reactor adapter of
# its own wasmtime). `wasm-tools component new --adapt` would do the same here.
cp "$work/core.wasm" "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
