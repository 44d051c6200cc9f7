#!/usr/bin/env bash
# Builds llama.cpp's CPU backend from the PyPI sdist of llama-cpp-python (its vendor/llama.cpp),
# the peer of issues #35 (llama-mtmd-cli runs the tiny LLaVA GGUF pair) and #36 (llama-bench as
# the CPU speed peer):
#
#     tools/build_llama_cpp.sh            # prints the bin directory on its last line
#
# Builds only llama-mtmd-cli, llama-completion (the plain text CLI; this tree's llama-cli is a
# client of llama-server and needs the server and its web UI) and llama-bench, Release, into
# ~/.cache/visattn/llama.cpp-0.3.36/build (VISATTN_LLAMA_CPP_DIR overrides the directory),
# and does nothing when those binaries are already there and run (a cache, as .ci/run caches the
# torch venv). Delete the directory to rebuild.
#
# No network beyond the sdist's download (pip download, once, into ~/.cache/visattn/dl) and no
# extra libraries: the Web UI, the server, HTTPS (OpenSSL), subprocess/video support, tests and
# examples are off. GGML_NATIVE stays at its default (ON: -march=native), so the binaries are
# for this machine's CPU; the cache is per machine. OpenMP (GCC's libgomp) stays on, as in a
# default build. Needs cmake (installed with apt-get where missing), g++ and make.
#
# Build jobs: VISATTN_JOBS (default 2), run under `nice -n 19`: about 12 minutes on the 2-core
# CI machine while it runs tests. The libraries are shared (libllama, libmtmd, libggml*.so beside
# the binaries, found through their RUNPATH); a program of one's own links against them with
# -I SRC/include -I SRC/ggml/include -I SRC/tools/mtmd -L BIN -lmtmd -lllama -lggml -lggml-base
# -Wl,-rpath,BIN (SRC = the directory's src/, see tools/llama_cpp_tiny_llava.md).
#
# The tiny LLaVA pair (the model has no chat template; LLaVA-1.5's is vicuna):
#     BIN/llama-mtmd-cli -m tests/data/tiny-llava-gguf/lm-f32.gguf \
#         --mmproj tests/data/tiny-llava-gguf/mmproj-f32.gguf \
#         --image tests/data/tiny-llava-gguf/picture28.png \
#         -p "What is in the picture?" -n 8 --temp 0 --chat-template vicuna
set -euo pipefail
die() { echo "error: $*" >&2; exit 1; }
# shellcheck source=tools/llama_cpp_sdist.sh
source "$(dirname "$0")/llama_cpp_sdist.sh"

VERSION=0.3.36
DL="$HOME/.cache/visattn/dl"
SDIST="$DL/llama_cpp_python-$VERSION.tar.gz"
DIR="${VISATTN_LLAMA_CPP_DIR:-$HOME/.cache/visattn/llama.cpp-$VERSION}"
SRC="$DIR/src"
BUILD="$DIR/build"
BIN="$BUILD/bin"
JOBS="${VISATTN_JOBS:-2}"
TARGETS=(llama-mtmd-cli llama-completion llama-bench)

if have_all; then
    echo "llama.cpp $VERSION already built in $BIN"
    echo "$BIN"
    exit 0
fi

if ! command -v cmake >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null || die "apt-get install cmake failed"
fi
command -v c++ >/dev/null || die "no C++ compiler (apt-get install g++)"
command -v make >/dev/null || die "no make (apt-get install make)"

if [ ! -f "$SRC/CMakeLists.txt" ]; then
    rm -rf "$SRC"
    extract_llama_cpp "$SRC"
fi

start=$(date +%s)
nice -n 19 cmake -S "$SRC" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CPU=ON -DGGML_VULKAN=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_RPC=OFF \
    -DGGML_BACKEND_DL=OFF -DGGML_CCACHE=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_SUBPROCESS=OFF -DMTMD_VIDEO=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
    >"$DIR/cmake-configure.log" 2>&1 || { tail -40 "$DIR/cmake-configure.log" >&2; die "cmake configure failed (log: $DIR/cmake-configure.log)"; }
nice -n 19 cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" \
    >"$DIR/cmake-build.log" 2>&1 || { tail -40 "$DIR/cmake-build.log" >&2; die "cmake build failed (log: $DIR/cmake-build.log)"; }
have_all || die "the build finished but $BIN lacks one of ${TARGETS[*]}, or it does not run"
echo "llama.cpp $VERSION built in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
