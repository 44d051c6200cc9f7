#!/usr/bin/env bash
# Builds the demo, serves it on 127.0.0.1, and runs test.mjs in headless Chromium (Debian's
# package; SwiftShader provides WebGPU). Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")"
die() { echo "error: $*" >&2; exit 1; }
# Debian packages for what this machine lacks: the browser, node and npm, curl.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "need ${missing[*]} and have no apt-get to install them"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
# playwright-core at the version package-lock.json pins.
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent || die "npm ci (playwright-core) failed"
./build.sh
port="${VISATTN_WEB_PORT:-8737}"
python3 -m http.server --bind 127.0.0.1 "$port" --directory . >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
    sleep 0.1
done
# The native CLI: the page must agree with `visattn apply` on the same dumps (cargo's own
# dependency tracking keeps it current; after `cargo test` it is already built).
(cd .. && cargo build --quiet --example visattn)
cli="$(cd .. && pwd)/target/debug/examples/visattn"
# The official fixture (shared/data beside the checkout) doubles as "your dump".
node test.mjs "http://127.0.0.1:$port/index.html" "$(cd .. && pwd)/../shared/data/official-var-fixture.safetensors" "$cli"
