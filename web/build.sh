#!/usr/bin/env bash
# Builds the demo into web/pkg: visattn-web for wasm32, then wasm-bindgen (pinned version).
# Prefers `rustup target add wasm32-unknown-unknown`; where rustup cannot fetch the target,
# falls back to Debian's rustc-web building std from source (shared/docs/web-toolchain.md).
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN_VERSION=0.2.130
TARGET=wasm32-unknown-unknown

if rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET" >/dev/null 2>&1; then
    cargo build -p visattn-web --release --target "$TARGET"
else
    echo "rustup has no $TARGET here: using Debian's rustc-web with -Zbuild-std" >&2
    PREFIX="${VISATTN_RUST_WEB:-/opt/rust-web}"
    if [ ! -x "$PREFIX/usr/bin/rustc" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm22 lld-22 libgit2-1.5 libssh2-1 libcurl4 libsqlite3-0 >/dev/null
        tmp="$(mktemp -d)"
        (cd "$tmp" && apt-get download rustc-web cargo-web libstd-rust-web-dev libstd-rust-web-1.96 rust-web-src >/dev/null)
        mkdir -p "$PREFIX"
        for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
    fi
    LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu" RUSTC="$PREFIX/usr/bin/rustc" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
        "$PREFIX/usr/bin/cargo" build -p visattn-web --release --target "$TARGET" -Zbuild-std=std,panic_abort
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    # No --locked: the CLI's lockfile pins a yanked crate (web-toolchain.md).
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
wasm-bindgen --target web --no-typescript --out-dir web/pkg "target/$TARGET/release/visattn_web.wasm"
echo "built web/pkg ($(du -h web/pkg/visattn_web_bg.wasm | cut -f1) of wasm)"
