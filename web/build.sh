#!/usr/bin/env bash
# Builds the demo into web/pkg: visattn-web for wasm32, then wasm-bindgen at the version the
# lockfile pins, with the toolchain web/wasm.sh finds or installs.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "error: $*" >&2; exit 1; }

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
[ -n "$WASM_BINDGEN_VERSION" ] || die "no wasm-bindgen in Cargo.lock (is visattn-web a workspace member?)"

# shellcheck source=web/wasm.sh
. web/wasm.sh
wasm_cargo build -p visattn-web --release

if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
    # --locked first (reproducible); the CLI's own lockfile has pinned yanked crates before
    # (web-toolchain.md), so fall back to a fresh resolution, and say so.
    if ! cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked; then
        echo "warning: wasm-bindgen-cli $WASM_BINDGEN_VERSION did not install with --locked; retrying without" >&2
        cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" \
            || die "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION failed"
    fi
fi
wasm-bindgen --target web --no-typescript --out-dir web/pkg "target/$TARGET/release/visattn_web.wasm"
echo "built web/pkg ($(du -h web/pkg/visattn_web_bg.wasm | cut -f1) of wasm)"
