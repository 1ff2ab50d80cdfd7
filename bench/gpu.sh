#!/usr/bin/env bash
# Tessera on a real NVIDIA GPU, every goal of issue 16 in one run of at most
# 8 minutes (budgets below add up to 460 s; the run stops each part at its own):
#   1. the kernel checks (the Deno suites test/webgpu/*.deno.test.ts) on the
#      NVIDIA adapter, subgroups on where the adapter has them;
#   2. PyTorch's fp32 matmul rate, TF32 off (1024^3, 4096^3);
#   3. webgpu-matmul.ts --big: the 3 DBN shapes (x3 forms) and 4096^3 against
#      TF.js-webgpu on the same adapter (goal: >= 50% of PyTorch at 4096^3,
#      >= 1.5x TF.js at the DBN shapes);
#   4. webgpu-steps.ts: whole CD-1 and fine-tuning steps at batch 100 and bundles,
#      webgpu vs the cpu backend on one thread of the same host, with the
#      dispatches / submits / readbacks / buffers / bind groups of each step
#      (goal: fine-tuning step >= 10x the one-thread cpu rate);
#   5. bench/gpu/schedule.ts: the seed network's whole schedule
#      (bench/configs/spark-dbn.json) through the coordinator and one Deno
#      worker on the GPU, timed to 1.96% test error (goal: under 125 s).
#
# The GPU machine has neither Node nor Deno nor npm and no internet, so the
# pieces travel in git-ignored folders prepared here first:
#   bench/gpu.sh --prepare     # on a dev machine with node_modules:
#                              #   .carry/deno.xz          (the Deno binary, xz)
#                              #   .carry/tfjs-webgpu.mjs  (tfjs-core + tfjs-backend-webgpu bundle)
#                              #   .carry/coordinator.mjs  (coordinator/server.ts bundled for Deno,
#                              #                            SQLite through node:sqlite: bench/gpu/sqlite-shim.cjs)
#                              #   .carry/worker.mjs       (client/deno/worker.ts bundled)
#                              #   .carry/mnist/*.gz       (MNIST, from $TESSERA_MNIST_DIR)
#                              #   .gl/*.deb               (Vulkan loader etc., /work/.library/device/README.md)
#   bench/gpu.sh --bundles     # only the two bundles (quick; to test schedule.ts here)
#   bench/gpu.sh               # on the GPU machine, from the repository root
#                              # (device tool: carry [".carry", ".gl"])
# Time limits (s): GPU_TEST_TIMEOUT (60), GPU_TORCH_TIMEOUT (40),
# GPU_BENCH_TIMEOUT (120), GPU_STEPS_TIMEOUT (60), GPU_SCHEDULE_TIMEOUT (180);
# GPU_BENCH_MS (200), GPU_BENCH_ARGS replaces "--big" (e.g. "--big --presets"),
# GPU_STEPS=0 / GPU_SCHEDULE=0 / GPU_TESTS=0 skip a part.
# Output: summaries here; full logs in $OUT/gpu-{tests,torch,matmul,steps,schedule}.log.
set -uo pipefail
cd "$(dirname "$0")/.."

bundles() {
  mkdir -p .carry
  node_modules/.bin/esbuild coordinator/server.ts --bundle --log-level=error --platform=node --format=esm --target=es2022 \
    --alias:better-sqlite3=./bench/gpu/sqlite-shim.cjs \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
    --outfile=.carry/coordinator.mjs
  node_modules/.bin/esbuild client/deno/worker.ts --bundle --log-level=error --platform=neutral --format=esm --target=es2022 \
    --main-fields=module,main --external:node:* --outfile=.carry/worker.mjs
}

if [ "${1:-}" = "--bundles" ]; then
  set -e
  bundles
  ls -la .carry
  exit 0
fi

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p .carry .gl .carry/mnist
  xz -T2 -9 -c node_modules/deno/deno > .carry/deno.xz
  node_modules/.bin/vite build --config bench/webgpu-tfjs.vite.config.mjs
  bundles
  mnist="${TESSERA_MNIST_DIR:-../shared/datasets/mnist}"
  cp "$mnist"/t10k-*.gz "$mnist"/train-*.gz .carry/mnist/
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  ls -la .carry .carry/mnist .gl
  du -sh .carry .gl
  exit 0
fi

OUT="${OUT:-/tmp/tessera-gpu-out}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=/tmp/xdg-gpu && mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

# Vulkan loader (the NVIDIA driver's ICD needs it), unless the machine has one.
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd_found=0
for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
  ls "$d"/*nvidia* >/dev/null 2>&1 && icd_found=1
done
if [ $icd_found = 0 ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<loader default>}"

DENO=$(command -v deno || true)
if [ -z "$DENO" ]; then
  DENO=/tmp/tessera-deno
  [ -x "$DENO" ] || { xz -dc .carry/deno.xz > "$DENO" && chmod +x "$DENO"; }
fi
export DENO_DIR=/tmp/tessera-deno-dir DENO_NO_PACKAGE_JSON=1 DENO_NO_UPDATE_CHECK=1
"$DENO" --version | head -1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null

start=$(date +%s)
if [ "${GPU_TESTS:-1}" = 1 ]; then
  echo "== kernel checks (deno test test/webgpu/*.deno.test.ts)"
  t0=$(date +%s)
  # The Deno suites only: chromium.test.ts (Vitest) imports npm types this machine lacks.
  timeout "${GPU_TEST_TIMEOUT:-60}" "$DENO" test -A test/webgpu/*.deno.test.ts > "$OUT/gpu-tests.log" 2>&1
  echo "deno test exit status $?"
  grep -E "webgpu adapter|FAILED|passed|failed|error" "$OUT/gpu-tests.log" | tail -30
  echo "(tests took $(( $(date +%s) - t0 )) s)"
fi

echo "== fp32 matmul from PyTorch (TF32 off)"
timeout "${GPU_TORCH_TIMEOUT:-40}" python3 - <<'PY' 2>&1 | tee "$OUT/gpu-torch.log"
import torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device('cuda')
print('torch', torch.__version__, torch.cuda.get_device_name(0))
for n in (1024, 4096):
    a = torch.randn(n, n, device=dev, dtype=torch.float32)
    b = torch.randn(n, n, device=dev, dtype=torch.float32)
    for _ in range(3): a @ b
    torch.cuda.synchronize()
    reps = 50
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps): a @ b
        e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3 / reps)
    t = sorted(times)[2]
    print(f'torch fp32 (tf32 off) {n}^3: {2 * n**3 / t / 1e9:.0f} GFLOP/s')
PY

echo "== matmul vs TF.js-webgpu (deno run bench/webgpu-matmul.ts ${GPU_BENCH_ARGS:---big})"
TFJS_MODULE=.carry/tfjs-webgpu.mjs timeout "${GPU_BENCH_TIMEOUT:-120}" "$DENO" run -A bench/webgpu-matmul.ts ${GPU_BENCH_ARGS:---big} --ms "${GPU_BENCH_MS:-200}" > "$OUT/gpu-matmul.log" 2>&1
echo "bench exit status $?"
grep -v "^preset " "$OUT/gpu-matmul.log" | grep -v "$(printf "\t")" | tail -30

if [ "${GPU_STEPS:-1}" = 1 ]; then
  echo "== whole steps and bundles, webgpu vs cpu one thread (deno run bench/webgpu-steps.ts)"
  timeout "${GPU_STEPS_TIMEOUT:-60}" "$DENO" run -A bench/webgpu-steps.ts --ms 400 --no-resent 2>&1 | tee "$OUT/gpu-steps.log" | grep -v "$(printf "\t")" | tail -10
fi

if [ "${GPU_SCHEDULE:-1}" = 1 ]; then
  echo "== the seed network's schedule to 1.96% through coordinator + Deno worker (bench/gpu/schedule.ts)"
  TESSERA_MNIST_DIR="${TESSERA_MNIST_DIR:-.carry/mnist}" timeout "${GPU_SCHEDULE_TIMEOUT:-180}" "$DENO" run -A bench/gpu/schedule.ts \
    --job bench/configs/spark-dbn.json --target 0.0196 --limit-s "$(( ${GPU_SCHEDULE_TIMEOUT:-180} - 20 ))" --backend webgpu --out "$OUT" 2>&1 | tee "$OUT/gpu-schedule.log" | tail -40
fi
echo "(gpu.sh took $(( $(date +%s) - start )) s)"
