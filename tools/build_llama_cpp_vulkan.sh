#!/usr/bin/env bash
# Builds llama.cpp's Vulkan backend (with the CPU backend beside it) from the same PyPI sdist of
# llama-cpp-python as tools/build_llama_cpp.sh, so that llama-bench can run a model through
# Vulkan on a machine without a GPU, on Mesa's lavapipe (software Vulkan, mesa-vulkan-drivers):
#
#     tools/build_llama_cpp_vulkan.sh     # prints the bin directory on its last line
#
# Builds only llama-bench, Release, into ~/.cache/visattn/llama.cpp-0.3.36/build-vulkan
# (VISATTN_LLAMA_CPP_DIR overrides ~/.cache/visattn/llama.cpp-0.3.36, as for the CPU script),
# and does nothing when that binary is already there and runs (a cache). Delete build-vulkan/
# (and src-vulkan/, below) to rebuild. The CPU script's src/ and build/ are read, never written.
#
# lavapipe is a CPU-type Vulkan device, which llama.cpp skips unless it is asked for by index:
#
#     GGML_VK_VISIBLE_DEVICES=0 BIN/llama-bench -m MODEL.gguf -p 36 -n 8 -r 2 -ngl 99 [-o json]
#
# Without GGML_VK_VISIBLE_DEVICES=0 the Vulkan backend says "ggml_vulkan: No devices found." on
# stderr and llama-bench silently runs on the CPU backend. Its "backends" field (the table's
# backend column) still says Vulkan, since it names the backends compiled in; check "gpu_info"
# instead (in -o json / -o jsonl: "llvmpipe (LLVM 15.0.6, 256 bits)" on lavapipe, "" on none).
# -o json prints one JSON array; -o jsonl prints one object a line (one a test: pp36, tg8).
#
# Source and the one patch. Debian bookworm's Vulkan headers (libvulkan-dev 1.3.239) predate
# VK_EXT_layer_settings, which ggml-vulkan.cpp's ggml_vk_instance_init() uses unconditionally
# (vk::LayerSettingEXT / vk::LayerSettingsCreateInfoEXT, chained into the InstanceCreateInfo to
# turn on the validation layer's best-practice checks; the layer is only asked for in a
# GGML_VULKAN_VALIDATE build), so the compile fails there. The script therefore builds from its
# own copy of the source, ~/.cache/visattn/llama.cpp-0.3.36/src-vulkan (a `cp -r` of the CPU
# script's src/ when that exists, else extracted from the sdist; made in a temporary directory
# and renamed into place, so an interrupted run leaves no half copy), and patches only that copy:
# the block is wrapped in `#if defined(VK_EXT_layer_settings)` (vulkan_core.h defines that macro
# in headers that know the extension), with an `#else` that creates the instance without the
# settings chain. With new headers the code compiles exactly as upstream's; with old ones the
# only loss is the best-practice setting of a validation build. The patch is idempotent (a
# marker comment says it is applied) and the script stops if the block is no longer found. The
# CPU build never sees the change, and re-extracting either tree cannot undo it for the other.
#
# Needs cmake, g++, make, and the Vulkan build packages (installed with apt-get where missing):
# glslc (shaderc's GLSL compiler, for the ~hundreds of compute shaders), libvulkan-dev (headers
# and loader) and spirv-headers (ggml-vulkan's CMakeLists asks for SPIRV-Headers' CMake config).
# Running needs a Vulkan driver: mesa-vulkan-drivers (lavapipe, lvp_icd.x86_64.json).
#
# Build jobs: VISATTN_JOBS (default 2), run under `nice -n 19`; most of the time goes to
# compiling the shaders and the generated ggml-vulkan-shaders.cpp: 547 s (about 9 minutes) on
# the 2-core machine while other work ran. As in the CPU build, GGML_NATIVE stays ON (the CPU
# code is for this machine's CPU), the libraries are shared (found through the binary's
# RUNPATH), and the server, web UI, HTTPS (OpenSSL), tests and examples are off.
#
# Speed on lavapipe is far below the CPU backend's (SmolLM2-135M Q4_1, 2 cores, under load:
# pp36 1.9 t/s and tg8 0.6 t/s on Vulkan against 282 and 140 t/s on the CPU build's llama-bench).
set -euo pipefail
die() { echo "error: $*" >&2; exit 1; }
# shellcheck source=tools/llama_cpp_sdist.sh
source "$(dirname "$0")/llama_cpp_sdist.sh"

VERSION=0.3.36
DL="$HOME/.cache/visattn/dl"
SDIST="$DL/llama_cpp_python-$VERSION.tar.gz"
DIR="${VISATTN_LLAMA_CPP_DIR:-$HOME/.cache/visattn/llama.cpp-$VERSION}"
CPU_SRC="$DIR/src"
SRC="$DIR/src-vulkan"
BUILD="$DIR/build-vulkan"
BIN="$BUILD/bin"
JOBS="${VISATTN_JOBS:-2}"
TARGETS=(llama-bench)
VK_CPP="ggml/src/ggml-vulkan/ggml-vulkan.cpp"
MARKER="visattn: VK_EXT_layer_settings guard"

if have_all; then
    echo "llama.cpp $VERSION (Vulkan) already built in $BIN"
    echo "$BIN"
    exit 0
fi

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v glslc >/dev/null || missing+=(glslc)
[ -f /usr/include/vulkan/vulkan.hpp ] || missing+=(libvulkan-dev)
[ -f /usr/include/spirv/unified1/spirv.hpp ] || missing+=(spirv-headers)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
command -v c++ >/dev/null || die "no C++ compiler (apt-get install g++)"
command -v make >/dev/null || die "no make (apt-get install make)"

if [ ! -f "$SRC/CMakeLists.txt" ]; then
    tmp="$SRC.tmp"
    rm -rf "$tmp" "$SRC"
    if [ -f "$CPU_SRC/CMakeLists.txt" ]; then
        cp -r "$CPU_SRC" "$tmp" || die "copying $CPU_SRC failed"
    else
        extract_llama_cpp "$tmp"
    fi
    [ -f "$tmp/CMakeLists.txt" ] || die "$tmp holds no CMakeLists.txt"
    mv "$tmp" "$SRC"
fi

# The VK_EXT_layer_settings guard (see the header), applied once to the copy.
if ! grep -q "$MARKER" "$SRC/$VK_CPP"; then
    perl -0pi -e '
        s{\n(    VkBool32 enable_best_practice = layer_settings;\n.*?\n    vk::InstanceCreateInfo instance_create_info\(vk::InstanceCreateFlags\{\}, &app_info, layers, extensions), &layer_setting_info\);\n}
         {\n#if defined(VK_EXT_layer_settings) // visattn: VK_EXT_layer_settings guard (tools/build_llama_cpp_vulkan.sh)\n$1, &layer_setting_info);\n#else\n    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n#endif\n}s
    ' "$SRC/$VK_CPP" || die "patching $SRC/$VK_CPP failed"
    grep -q "$MARKER" "$SRC/$VK_CPP" \
        || die "the VK_EXT_layer_settings block of $SRC/$VK_CPP (ggml_vk_instance_init) was not found; patch it by hand"
fi

start=$(date +%s)
nice -n 19 cmake -S "$SRC" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CPU=ON -DGGML_VULKAN=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_RPC=OFF \
    -DGGML_BACKEND_DL=OFF -DGGML_CCACHE=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_SUBPROCESS=OFF -DMTMD_VIDEO=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
    >"$DIR/cmake-vulkan-configure.log" 2>&1 \
    || { tail -40 "$DIR/cmake-vulkan-configure.log" >&2; die "cmake configure failed (log: $DIR/cmake-vulkan-configure.log)"; }
nice -n 19 cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" \
    >"$DIR/cmake-vulkan-build.log" 2>&1 \
    || { tail -40 "$DIR/cmake-vulkan-build.log" >&2; die "cmake build failed (log: $DIR/cmake-vulkan-build.log)"; }
have_all || die "the build finished but $BIN lacks one of ${TARGETS[*]}, or it does not run"
echo "llama.cpp $VERSION (Vulkan) built in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
