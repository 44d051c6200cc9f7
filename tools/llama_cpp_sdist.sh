# Sourced by tools/build_llama_cpp.sh and tools/build_llama_cpp_vulkan.sh, which set VERSION,
# DL, SDIST, BIN, TARGETS and die() first: llama.cpp's source from the PyPI sdist of
# llama-cpp-python, and the build cache's check.

# have_all: every binary of TARGETS is in BIN and runs (the build is cached).
have_all() {
    local t
    for t in "${TARGETS[@]}"; do
        [ -x "$BIN/$t" ] || return 1
        # A binary that no longer loads (a shared library gone) is no cache.
        "$BIN/$t" --help >/dev/null 2>&1 || return 1
    done
}

# extract_llama_cpp DEST: vendor/llama.cpp of the sdist (downloaded once into $DL with pip, no
# build) into the directory DEST, which must not exist yet.
extract_llama_cpp() {
    local dest="$1"
    if [ ! -f "$SDIST" ]; then
        local py="${VISATTN_PYTHON:-$HOME/.cache/visattn/torch-venv/bin/python}"
        [ -x "$py" ] || py=python3
        mkdir -p "$DL"
        "$py" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
            "llama-cpp-python==$VERSION" -d "$DL" || die "pip download llama-cpp-python==$VERSION failed"
        [ -f "$SDIST" ] || die "pip download gave no $SDIST"
    fi
    mkdir -p "$dest"
    # models/ (vocabularies for llama.cpp's tests, 75 MB) and docs/ are not needed to build.
    tar -xzf "$SDIST" -C "$dest" --strip-components=3 \
        --exclude="llama_cpp_python-$VERSION/vendor/llama.cpp/models" \
        --exclude="llama_cpp_python-$VERSION/vendor/llama.cpp/docs" \
        "llama_cpp_python-$VERSION/vendor/llama.cpp" \
        || die "extracting vendor/llama.cpp from $SDIST failed"
    [ -f "$dest/CMakeLists.txt" ] || die "$SDIST holds no vendor/llama.cpp/CMakeLists.txt"
    # The sdist keeps the submodule's .git file (gitdir: ../../.git/modules/...), which points
    # nowhere here; without it cmake stops looking for a git index.
    rm -f "$dest/.git"
}
