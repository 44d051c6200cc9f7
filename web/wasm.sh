#!/usr/bin/env bash
# Sourced by web/build.sh and .ci/run: `wasm_cargo ARGS...` runs cargo for wasm32-unknown-unknown
# (`wasm_cargo build -p visattn-web --release`, `wasm_cargo check -p visattn-host`). Prefers
# `rustup target add wasm32-unknown-unknown`; where rustup cannot fetch the target, falls back
# to Debian's rustc-web building std from source (shared/docs/web-toolchain.md), installed into
# /opt/rust-web once, with package names resolved from the release at hand.
TARGET=wasm32-unknown-unknown

wasm_die() { echo "error: $*" >&2; exit 1; }

wasm_depends() { apt-cache depends --no-recommends --no-suggests "$1" 2>/dev/null | awk '/^  Depends:/ { print $2 }' | tr -d '<>'; }

wasm_cargo() {
    if [ "${VISATTN_WEB_TOOLCHAIN:-}" != debian ] \
        && { rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET" >/dev/null 2>&1; }; then
        cargo "$@" --target "$TARGET"
        return
    fi
    echo "rustup has no $TARGET here: using Debian's rustc-web with -Zbuild-std" >&2
    local PREFIX="${VISATTN_RUST_WEB:-/opt/rust-web}"
    if [ ! -x "$PREFIX/usr/bin/rustc" ] || [ ! -f "$PREFIX/llvm-version" ]; then
        command -v apt-get >/dev/null || wasm_die "no rustup target $TARGET and no apt-get for Debian's rustc-web: install the target (rustup target add $TARGET)"
        apt-get update -qq
        apt-cache show rustc-web >/dev/null 2>&1 \
            || wasm_die "this Debian release has no rustc-web (bookworm-security has it): enable it, or rustup target add $TARGET"
        local std llvm n runtime tmp
        std="$(wasm_depends libstd-rust-web-dev | grep '^libstd-rust-web-' | head -1)"
        llvm="$(wasm_depends "$std" | grep '^libllvm[0-9]' | head -1)"
        n="${llvm#libllvm}"
        [ -n "$std" ] && [ -n "$n" ] || wasm_die "cannot resolve rustc-web's std and LLVM packages (got '$std', '$llvm')"
        runtime="$(wasm_depends cargo-web | grep -E '^lib(git2|ssh2|curl|sqlite3)' | sort -u | tr '\n' ' ')"
        echo "rustc-web $(apt-cache show rustc-web | awk '/^Version:/ { print $2; exit }'), $std, LLVM $n" >&2
        # shellcheck disable=SC2086 # runtime is a list of package names
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$llvm" "lld-$n" $runtime >/dev/null \
            || wasm_die "apt-get install $llvm lld-$n $runtime failed"
        tmp="$(mktemp -d)"
        (cd "$tmp" && apt-get download rustc-web cargo-web libstd-rust-web-dev "$std" rust-web-src >/dev/null) \
            || wasm_die "apt-get download of rustc-web and its std failed"
        mkdir -p "$PREFIX"
        for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
        echo "$n" > "$PREFIX/llvm-version"
    fi
    local n
    n="$(cat "$PREFIX/llvm-version")"
    [ -x "/usr/lib/llvm-$n/bin/wasm-ld" ] || wasm_die "/usr/lib/llvm-$n/bin/wasm-ld is missing (apt-get install lld-$n)"
    LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu" RUSTC="$PREFIX/usr/bin/rustc" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="/usr/lib/llvm-$n/bin/wasm-ld" \
        "$PREFIX/usr/bin/cargo" "$@" --target "$TARGET" -Zbuild-std=std,panic_abort
}
