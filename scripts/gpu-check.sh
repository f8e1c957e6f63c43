#!/usr/bin/env bash
# GPU check: one unattended command on a GPU machine (under 8 minutes).
#  1. looks for a Vulkan loader and driver (what the WebGPU provider needs) and for the CUDA provider;
#  2. runs check-reference on the shared fixture with --device webgpu (same tolerances as on the CPU);
#  3. reports node placement (any node that falls back to the CPU);
#  4. runs `bench step` on cpu and webgpu (and cuda where installed) for vit_tiny/16 and
#     vit_small/16 at batch 8 and 64, and prints one table.
# Run it from the repository root after `pnpm install && pnpm build`.
# Output: a table on stdout; every command's JSON under ${GPU_CHECK_OUT:-gpu-check-out}/.
set -uo pipefail
cd "$(dirname "$0")/.."
CLI="node packages/coordinator/dist/cli.js"
OUT="${GPU_CHECK_OUT:-gpu-check-out}"
FIXTURE="packages/model/test/data/dino-step-small"
PER_BENCH_S="${PER_BENCH_S:-30}"   # up to 12 benches must fit the 8-minute budget
mkdir -p "$OUT"

[ -f packages/coordinator/dist/cli.js ] || { echo "gpu-check: build first (pnpm install && pnpm build)"; exit 1; }

echo "== devices"
if ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then echo "vulkan loader: found"; else echo "vulkan loader: MISSING (libvulkan.so.1; Debian: apt-get install libvulkan1)"; fi
for icd in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/nvidia/share/vulkan/icd.d/*.json; do
  [ -f "$icd" ] && echo "vulkan driver (ICD): $icd"
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
node -e 'console.log("onnxruntime-node providers:", JSON.stringify(require("onnxruntime-node").listSupportedBackends()))' 2>/dev/null \
  || (cd packages/model && node -e 'console.log("onnxruntime-node providers:", JSON.stringify(require("onnxruntime-node").listSupportedBackends()))')

DEVICES="cpu webgpu"
(cd packages/model && node -e 'process.exit(require("./dist/index.js").cudaProviderInstalled() ? 0 : 1)') && DEVICES="$DEVICES cuda"
echo "devices to bench: $DEVICES"

echo "== check-reference --device webgpu"
if timeout 120 $CLI check-reference --fixture "$FIXTURE" --device webgpu >"$OUT/check-reference-webgpu.json" 2>"$OUT/check-reference-webgpu.err"; then
  echo "webgpu: PASS (worst: $(node -e 'const r=require(process.argv[1]);console.log(r.worst.name, r.worst.relError.toExponential(2))' "$PWD/$OUT/check-reference-webgpu.json"))"
else
  echo "webgpu: FAIL — $(tail -n 3 "$OUT/check-reference-webgpu.err" | tr '\n' ' ')"
  node -e 'const r=require(process.argv[1]);for(const [k,q] of Object.entries(r.quantities)) if(!q.ok) console.log("  ",k,q.relError.toExponential(2),"limit",q.limit)' "$PWD/$OUT/check-reference-webgpu.json" 2>/dev/null
fi

echo "== placement --device webgpu (vit_tiny/16)"
timeout 120 $CLI placement --device webgpu --arch vit_tiny --out-dim 65536 >"$OUT/placement-webgpu.json" 2>"$OUT/placement-webgpu.err"
echo "exit $? (0: every node on the GPU, 2: some fall back to the CPU; see $OUT/placement-webgpu.json)"
node -e 'const r=require(process.argv[1]);console.log(JSON.stringify(r.graphs));const ops={};for(const n of r.cpu_fallback) ops[n.op]=(ops[n.op]||0)+1;console.log("cpu fallback by op:",JSON.stringify(ops))' "$PWD/$OUT/placement-webgpu.json" 2>/dev/null

echo "== bench step"
printf '%-8s %-12s %-6s %-12s %-12s %-10s\n' device model batch step_s img_per_s rss_mb
for device in $DEVICES; do
  if grep -q "cannot run here" "$OUT/check-reference-$device.err" 2>/dev/null; then
    printf '%-8s %s\n' "$device" "skipped: the device is not usable here (see above)"; continue
  fi
  for arch in vit_tiny vit_small; do
    for batch in 8 64; do
      name="bench-$device-$arch-$batch"
      if timeout "$PER_BENCH_S" $CLI bench step --device "$device" --arch "$arch" --patch-size 16 --batch-size "$batch" \
          --local-crops 8 --out-dim 65536 --threads "$(nproc)" --steps 2 --warmup 1 >"$OUT/$name.json" 2>"$OUT/$name.err"; then
        node -e 'const r=require(process.argv[1]);console.log([process.argv[2].padEnd(8),(r.arch+"/"+r.patch_size).padEnd(12),String(r.batch_size).padEnd(6),r.step_s_median.toFixed(3).padEnd(12),r.images_per_s.toFixed(1).padEnd(12),r.peak_rss_mb].join(" "))' "$PWD/$OUT/$name.json" "$device"
      else
        printf '%-8s %-12s %-6s %s\n' "$device" "$arch/16" "$batch" "did not finish in ${PER_BENCH_S}s or failed: $(tail -n 1 "$OUT/$name.err")"
      fi
    done
  done
done
