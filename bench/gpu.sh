#!/usr/bin/env bash
# Tessera's WGSL kernels on a real NVIDIA GPU: the kernel checks (the Deno
# suite test/webgpu/) and the matmul benchmark over the NVIDIA Vulkan driver,
# beside the card's fp32 matmul rate from PyTorch with TF32 off.
#
# The GPU machine may have neither Node nor Deno and no internet, so the
# pieces travel in git-ignored folders prepared here first:
#   bench/gpu.sh --prepare     # on a dev machine with node_modules:
#                              #   .carry/deno.xz          (the Deno binary, xz)
#                              #   .carry/tfjs-webgpu.mjs  (tfjs-core + tfjs-backend-webgpu bundle)
#                              #   .gl/*.deb               (Vulkan loader etc., /work/.library/device/README.md)
#   bench/gpu.sh               # on the GPU machine, from the repository root
# Order: the Deno kernel checks on the NVIDIA adapter, PyTorch's fp32 rate,
# the matmul preset comparison (webgpu-matmul.ts --presets: old vs new presets
# vs candidate tiles vs tfjs), then whole steps. Time limits: GPU_TEST_TIMEOUT,
# GPU_BENCH_TIMEOUT, GPU_STEPS_TIMEOUT (s), GPU_BENCH_MS, GPU_STEPS=0 skips steps,
# GPU_BENCH_ARGS replaces "--big --presets" (e.g. "--big": the default presets only).
# Output: summaries here; full logs in $OUT/gpu-{tests,torch,matmul,steps}.log.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p .carry .gl
  xz -T2 -c node_modules/deno/deno > .carry/deno.xz
  node_modules/.bin/vite build --config bench/webgpu-tfjs.vite.config.mjs
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  ls -la .carry .gl
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

echo "== kernel checks (deno test test/webgpu/*.deno.test.ts)"
t0=$(date +%s)
# The Deno suites only: chromium.test.ts (Vitest) imports npm types this machine lacks.
timeout "${GPU_TEST_TIMEOUT:-120}" "$DENO" test -A test/webgpu/*.deno.test.ts > "$OUT/gpu-tests.log" 2>&1
echo "deno test exit status $?"
grep -E "webgpu adapter|FAILED|passed|failed|error" "$OUT/gpu-tests.log" | tail -30
echo "(tests took $(( $(date +%s) - t0 )) s)"

echo "== fp32 matmul from PyTorch (TF32 off)"
timeout 60 python3 - <<'PY' 2>&1 | tee "$OUT/gpu-torch.log"
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

echo "== matmul presets (deno run bench/webgpu-matmul.ts --big --presets)"
TFJS_MODULE=.carry/tfjs-webgpu.mjs timeout "${GPU_BENCH_TIMEOUT:-200}" "$DENO" run -A bench/webgpu-matmul.ts ${GPU_BENCH_ARGS:---big --presets} --ms "${GPU_BENCH_MS:-100}" > "$OUT/gpu-matmul.log" 2>&1
echo "bench exit status $?"
grep -v "^preset " "$OUT/gpu-matmul.log" | grep -v "$(printf "\t")" | tail -30

if [ "${GPU_STEPS:-1}" = 1 ]; then
  echo "== whole steps (deno run bench/webgpu-steps.ts)"
  timeout "${GPU_STEPS_TIMEOUT:-60}" "$DENO" run -A bench/webgpu-steps.ts --ms 500 2>&1 | tee "$OUT/gpu-steps.log" | grep -v "$(printf "\t")" | tail -8
fi
