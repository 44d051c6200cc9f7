#!/usr/bin/env bash
# Builds the demo into web/pkg: visattn-web for wasm32, then wasm-bindgen at the version the
# lockfile pins. Prefers `rustup target add wasm32-unknown-unknown`; where rustup cannot fetch
# the target, falls back to Debian's rustc-web building std from source
# (shared/docs/web-toolchain.md), with package names resolved from the release at hand.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=wasm32-unknown-unknown
die() { echo "error: $*" >&2; exit 1; }

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
[ -n "$WASM_BINDGEN_VERSION" ] || die "no wasm-bindgen in Cargo.lock (is visattn-web a workspace member?)"

# The dependencies of a Debian package, as names (first alternative of each).
depends() { apt-cache depends --no-recommends --no-suggests "$1" 2>/dev/null | awk '/^  Depends:/ { print $2 }' | tr -d '<>'; }

# VISATTN_WEB_TOOLCHAIN=debian forces the fallback (to check it on a machine with rustup).
if [ "${VISATTN_WEB_TOOLCHAIN:-}" != debian ] \
    && { rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET" >/dev/null 2>&1; }; then
    cargo build -p visattn-web --release --target "$TARGET"
else
    echo "rustup has no $TARGET here: using Debian's rustc-web with -Zbuild-std" >&2
    PREFIX="${VISATTN_RUST_WEB:-/opt/rust-web}"
    if [ ! -x "$PREFIX/usr/bin/rustc" ] || [ ! -f "$PREFIX/llvm-version" ]; then
        command -v apt-get >/dev/null || die "no rustup target $TARGET and no apt-get for Debian's rustc-web: install the target (rustup target add $TARGET)"
        apt-get update -qq
        apt-cache show rustc-web >/dev/null 2>&1 \
            || die "this Debian release has no rustc-web (bookworm-security has it): enable it, or rustup target add $TARGET"
        std="$(depends libstd-rust-web-dev | grep '^libstd-rust-web-' | head -1)"
        llvm="$(depends "$std" | grep '^libllvm[0-9]' | head -1)"
        n="${llvm#libllvm}"
        [ -n "$std" ] && [ -n "$n" ] || die "cannot resolve rustc-web's std and LLVM packages (got '$std', '$llvm')"
        runtime="$(depends cargo-web | grep -E '^lib(git2|ssh2|curl|sqlite3)' | sort -u | tr '\n' ' ')"
        echo "rustc-web $(apt-cache show rustc-web | awk '/^Version:/ { print $2; exit }'), $std, LLVM $n" >&2
        # shellcheck disable=SC2086 # runtime is a list of package names
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$llvm" "lld-$n" $runtime >/dev/null \
            || die "apt-get install $llvm lld-$n $runtime failed"
        tmp="$(mktemp -d)"
        (cd "$tmp" && apt-get download rustc-web cargo-web libstd-rust-web-dev "$std" rust-web-src >/dev/null) \
            || die "apt-get download of rustc-web and its std failed"
        mkdir -p "$PREFIX"
        for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
        echo "$n" > "$PREFIX/llvm-version"
    fi
    n="$(cat "$PREFIX/llvm-version")"
    [ -x "/usr/lib/llvm-$n/bin/wasm-ld" ] || die "/usr/lib/llvm-$n/bin/wasm-ld is missing (apt-get install lld-$n)"
    LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu" RUSTC="$PREFIX/usr/bin/rustc" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="/usr/lib/llvm-$n/bin/wasm-ld" \
        "$PREFIX/usr/bin/cargo" build -p visattn-web --release --target "$TARGET" -Zbuild-std=std,panic_abort
fi

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
