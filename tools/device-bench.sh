#!/bin/bash
# The one prepared, short bench run for a session that the `device` tool lends a GPU (issue #6):
# the four shapes with GPU timestamps, as JSON lines in $OUT/bench.jsonl, for the README's table,
# then the LLaVA host's LLaMA-7B-shaped prefill and decode (random f16 weights made on the GPU,
# 13.5 GB) in $OUT/llava.txt (issue #17; no torch there: its ratio comes from this machine's CPU),
# and issue #36's four weight formats in both weight layouts in $OUT/formats.txt.
#
# Here, first (the device machine has no Rust toolchain and no network):
#   cargo build --release --example bench --example llava
#   mkdir -p .devbench && cp target/release/examples/bench target/release/examples/llava .devbench/
#   echo /.devbench/ >> .git/info/exclude; echo /.gl/ >> .git/info/exclude
#   and the Vulkan loader debs into .gl/ as ../.library/device/README.md says.
# Then: run(command = "bash tools/device-bench.sh", carry = [".devbench", ".gl"], timeout_s = 600),
# and give the machine back. Untested on a device so far: the binary is built against this
# machine's glibc; if it does not start there, that is the first thing the log says.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -e "$icd" ] && export VK_DRIVER_FILES="$icd"
nvidia-smi -L > "$OUT/gpu.txt" 2>&1
for shape in llava-1.5-7b long small decode; do
    echo "== $shape" >> "$OUT/bench.log"
    timeout 110 .devbench/bench --json --shape "$shape" --repeats 9 >> "$OUT/bench.jsonl" 2>> "$OUT/bench.log"
done
cat "$OUT/bench.log" "$OUT/bench.jsonl"
timeout 150 .devbench/llava --bench llama-7b --bench-layers 32 --bench-prompt 640 --bench-image 576 --dtype f16 > "$OUT/llava.txt" 2>&1
cat "$OUT/llava.txt"
# Issue #36: the four formats' decode bandwidth ratio and prefill GFLOPS, 8 of 32 layers each,
# the weight layout chosen by the staging probe (buffers expected on a GPU) and the other one.
for dtype in f16 q8_0 q4_0 q4_k; do
    for staging in auto texture; do
        echo "== $dtype, staging $staging" >> "$OUT/formats.txt"
        timeout 60 .devbench/llava --bench llama-7b --bench-layers 8 --bench-prompt 128 --bench-image 64 \
            --dtype "$dtype" --staging "$staging" --repeats 3 >> "$OUT/formats.txt" 2>&1
    done
done
cat "$OUT/formats.txt"
