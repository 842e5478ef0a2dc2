#!/usr/bin/env bash
# The GPU checks in one call, for a machine with an NVIDIA GPU, nvcc, CMake, ninja and PyTorch but
# no apt and no network. Run from the repository root:
#   launch/gpu_fetch_debs.sh      # on a Debian machine with network, once: the packages to carry (.gpu-debs)
#   launch/gpu_check.sh           # on the GPU machine, with .gpu-debs copied beside it (or --quick)
# Both stages together ran in under 2 minutes on an H200 (16 cores).
# Stage 1 needs nothing but nvcc: the attention op test (every case of the CPU reference on the GPU)
# and the kernel bandwidth benchmark. Stage 2 builds the LibTorch-only configuration against the
# machine's PyTorch (RLKV_WITH_DISTRIBUTED=OFF; the carried packages unpacked into a private prefix)
# and runs the GPU rollout op test, the NCCL op test and the Llama-3.1-8B-shaped decode-step
# benchmark. Logs and JSON lines go to $OUT or ./gpu-out.
# Exit status: 0 when every stage ran and passed, else the first failure's.
# Environment: TORCH_PYTHON (the python3 whose torch to build against), GPU_BUILD_DIR (build-gpu),
# RLKV_CUDA_ARCH (90), GPU_CHECK_CONFIGURE_ONLY=1 (stop stage 2 after CMake: checks the carried
# packages on a machine without a GPU), GPU_PREBUILT (a folder holding op_test_attention_cuda,
# bench_attention_cuda and ptxas.log built elsewhere with the same nvcc command: stage 1 then builds
# nothing), GPU_SANITIZER_TIMEOUT (seconds per sanitizer run, 150).
# With both stages, stage 2's build runs in the background while stage 1's tests and sanitizers run,
# and waits before the benchmarks (timings are taken with the CPUs idle).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
QUICK=""
STAGES="1 2"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --stage) STAGES="$2"; shift ;;
    *) echo "usage: launch/gpu_check.sh [--quick] [--stage 1|2]" >&2; exit 2 ;;
  esac
  shift
done
status=0
note() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }
# $OUT holds four files: summary.txt (steps and exit codes),
# log.txt (all output), results.jsonl (the benchmarks' JSON lines) and ptxas.log (registers, spills).
run_step() {  # name, command...: runs, appends its output to log.txt, records the status
  local name=$1; shift
  note "$name: $*"
  echo "== $name" >> "$OUT/log.txt"
  "$@" 2>&1 | tee -a "$OUT/log.txt"
  local rc=${PIPESTATUS[0]}
  note "$name: exit $rc"
  [[ $rc -ne 0 && $status -eq 0 ]] && status=$rc
  return $rc
}
finish() {
  grep '^{' "$OUT/log.txt" > "$OUT/results.jsonl" 2>/dev/null
  note "all done after $((SECONDS - START)) s, status $status"
  exit $status
}
START=$SECONDS
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1 | tee "$OUT/summary.txt"
ARCH=${RLKV_CUDA_ARCH:-90}

# ---- stage 2's configuration and build (the LibTorch-only build against the machine's PyTorch) -----
PY=${TORCH_PYTHON:-python3}
B=${GPU_BUILD_DIR:-build-gpu}
BUILD_PID=""
stage2_build() {  # configure + build; output in $OUT/build.log, status returned
  local TORCH_CMAKE SITE DEB=/tmp/rlkv-debroot
  TORCH_CMAKE=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
  SITE=$($PY -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
  [[ -z "$TORCH_CMAKE" ]] && { echo "no PyTorch for $PY"; return 77; }
  local PKGCONF=() RPATH_LINK
  if ! command -v pkg-config > /dev/null && [[ -x $DEB/usr/bin/pkgconf ]]; then PKGCONF=(-DPKG_CONFIG_EXECUTABLE=$DEB/usr/bin/pkgconf); fi
  RPATH_LINK=$(ls -d "$SITE"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRLKV_WITH_DISTRIBUTED=OFF \
    -DRLKV_CUDA_ARCHITECTURES="${ARCH}-real;${ARCH}-virtual" \
    "-DCMAKE_PREFIX_PATH=$TORCH_CMAKE;$DEB/usr" "${PKGCONF[@]}" \
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$RPATH_LINK -Wl,-rpath,$LIBDIR" || return $?
  [[ -n "${GPU_CHECK_CONFIGURE_ONLY:-}" ]] && return 0
  cmake --build "$B" -j "$(nproc)" --target op_test_runtime_cuda op_test_layer_ops_cuda op_test_nccl bench_decode_step rlkv
}
DEB=/tmp/rlkv-debroot
LIBDIR=$DEB/usr/lib/x86_64-linux-gnu
if [[ " $STAGES " == *" 2 "* ]]; then
  if compgen -G ".gpu-debs/*.deb" > /dev/null; then
    mkdir -p "$DEB"
    for f in .gpu-debs/*.deb; do dpkg-deb -x "$f" "$DEB" 2>/dev/null || (cd "$DEB" && ar p "$OLDPWD/$f" data.tar.xz | tar xJ); done
  fi
  export PKG_CONFIG_PATH=$LIBDIR/pkgconfig:$DEB/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$DEB
  export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  note "stage 2 build started in the background (log: build.log)"
  (stage2_build > "$OUT/build.log" 2>&1) &
  BUILD_PID=$!
fi
wait_build() {  # the background build's status, once
  [[ -z "$BUILD_PID" ]] && return "${BUILD_RC:-77}"
  wait "$BUILD_PID"; BUILD_RC=$?; BUILD_PID=""
  tail -5 "$OUT/build.log"
  note "stage 2 build: exit $BUILD_RC"
  return $BUILD_RC
}

# ---- stage 1: kernels only --------------------------------------------------------------------
if [[ " $STAGES " == *" 1 "* ]]; then
K=/tmp/rlkv-kernels
mkdir -p "$K"
NVCC="nvcc -O3 -std=c++17 -I. -gencode arch=compute_${ARCH},code=[sm_${ARCH},compute_${ARCH}] -Xcompiler -fopenmp"
if [[ -n "${GPU_PREBUILT:-}" && -x "$GPU_PREBUILT/op_test_attention_cuda" && -x "$GPU_PREBUILT/bench_attention_cuda" ]]; then
  note "build_kernels: prebuilt in $GPU_PREBUILT"
  cp "$GPU_PREBUILT"/op_test_attention_cuda "$GPU_PREBUILT"/bench_attention_cuda "$K"/
  cp "$GPU_PREBUILT"/ptxas.log "$OUT"/ 2>/dev/null
else
run_step build_kernels bash -c "$NVCC -Xptxas -v --use_fast_math -c kernels/attention_cuda.cu -o $K/attention_cuda.o \
    > $OUT/ptxas.log 2>&1 && $NVCC -c kernels/attention_cpu.cpp -o $K/attention_cpu.o && \
  $NVCC tests/op_test_attention_cuda.cpp $K/attention_cuda.o $K/attention_cpu.o -o $K/op_test_attention_cuda && \
  $NVCC bench/bench_attention_cuda.cpp $K/attention_cuda.o -o $K/bench_attention_cuda"
fi
run_step op_test_attention_cuda "$K/op_test_attention_cuda"
# Out-of-bounds accesses and shared-memory races on the hardware (compute-sanitizer works on the
# Firecracker machines, not under gVisor: a refusal there is logged, not counted as a failure).
if command -v compute-sanitizer > /dev/null; then
  for tool in memcheck racecheck; do
    note "sanitizer $tool: op_test_attention_cuda --quick"
    echo "== sanitizer $tool" >> "$OUT/log.txt"
    timeout "${GPU_SANITIZER_TIMEOUT:-150}" compute-sanitizer --tool $tool --error-exitcode 9 "$K/op_test_attention_cuda" --quick 2>&1 \
      | grep -v '^ok ' | tail -40 | tee -a "$OUT/log.txt"
    rc=${PIPESTATUS[0]}
    note "sanitizer $tool: exit $rc (9: errors found, in log.txt)"
    [[ $rc -eq 9 && $status -eq 0 ]] && status=9
  done
fi
wait_build > /dev/null  # the CPUs idle before timings
run_step bench_attention_cuda "$K/bench_attention_cuda" $QUICK
# The peers on the same shapes and GPU (PyTorch SDPA: cuDNN and flash backends), then the table of
# ratios: fraction of the copy, rlkv vs cuDNN, speed-up at s = 0.5 / 0.8 against the theory.
run_step sdpa_anchor "${TORCH_PYTHON:-python3}" bench/sdpa_anchor.py $QUICK
grep '^{' "$OUT/log.txt" | python3 bench/attention_summary.py | tee -a "$OUT/summary.txt"
# Nsight Compute on the main kernel (batch 32, 32k tokens, s = 0 and 0.8): DRAM throughput,
# achieved occupancy, registers and the top warp stall reasons.
if command -v ncu > /dev/null; then
  for shape in 32,32768,0,tc 32,32768,0.8,tc; do
    note "ncu: decode_tc_kernel at $shape"
    timeout 120 ncu --clock-control none --kernel-name regex:decode_tc_kernel --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
      "$K/bench_attention_cuda" --only "$shape" 2>&1 \
      | grep -E 'DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Duration|Stall|Warp Cycles Per Issued' \
      | tee -a "$OUT/summary.txt" >> "$OUT/log.txt"
  done
  # Where a small call's time goes (batch 4, s = 0.8, where the speed-up is furthest from the
  # theory): each launch of one call (the attention, then the merge of split spans) and its duration.
  for shape in 4,4096,0.8,tc 4,32768,0.8,tc; do
    note "ncu: one call's launches at $shape"
    timeout 120 ncu --clock-control none --kernel-name 'regex:decode_tc_kernel|tc_combine_kernel' --launch-skip 6 \
      --launch-count 2 --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
      "$K/bench_attention_cuda" --only "$shape" 2>&1 \
      | grep -E 'decode_tc_kernel|tc_combine_kernel|gpu__time_duration|dram__throughput' | sed -E 's/\(rlkv_decode_args.*\) \(/ (/' \
      | tee -a "$OUT/summary.txt" >> "$OUT/log.txt"
  done
fi
note "stage 1 done after $((SECONDS - START)) s"
fi
[[ " $STAGES " != *" 2 "* ]] && finish

# ---- stage 2: the LibTorch-only build's GPU tests and the decode step --------------------------------
wait_build
rc=$?
if [[ $rc -eq 77 ]]; then
  note "stage 2 skipped: no PyTorch for $PY"
  finish
fi
[[ $rc -ne 0 && $status -eq 0 ]] && status=$rc
if [[ $rc -eq 0 && -z "${GPU_CHECK_CONFIGURE_ONLY:-}" ]]; then
  run_step op_test_layer_ops_cuda "$B"/tests/op_test_layer_ops_cuda
  run_step op_test_runtime_cuda timeout 240 "$B"/tests/op_test_runtime_cuda
  if [[ $? -ge 128 ]]; then  # a crash: each part alone (which one leaves the process unable to exit), then where
    crashed=sampling,parity,generators,threads  # the whole test, unless one part crashes alone
    for p in sampling parity generators threads; do
      run_step "op_test_runtime_cuda_$p" timeout 120 "$B"/tests/op_test_runtime_cuda --parts "$p"
      [[ $? -ge 128 && $crashed == *,* ]] && crashed=$p
    done
    if command -v cuda-gdb > /dev/null; then
      # A call through a null pointer leaves the program counter at 0, where gdb cannot unwind: the
      # return address on the stack names the caller, and returning by hand gives the backtrace.
      note "op_test_runtime_cuda crashed: the backtrace of --parts $crashed under cuda-gdb (log.txt)"
      timeout 180 cuda-gdb -batch -ex run -ex 'info symbol *(void**)$sp' -ex 'set $pc = *(void**)$sp' \
        -ex 'set $sp = $sp + 8' -ex 'bt 40' -ex "info threads" \
        --args "$B"/tests/op_test_runtime_cuda --parts "$crashed" 2>&1 \
        | grep -v '^ok: \|^\[New Thread\|^\[Thread .* exited' | tail -120 | tee -a "$OUT/summary.txt" >> "$OUT/log.txt"
    fi
  fi
  run_step op_test_nccl "$B"/tests/op_test_nccl
  # The decode step before the rollouts and training below: its numbers come back even if those
  # run long.
  if [[ -n "$QUICK" ]]; then
    run_step bench_decode_step "$B"/bench/bench_decode_step --batch 32 --context 2048 --steps 8
  else
    # The shapes of the roofline target: batch 32 and 128 at 4,096 tokens, 4 and 32 at 16,384.
    run_step bench_decode_step "$B"/bench/bench_decode_step --batch 32,128 --context 4096 --steps 16 \
      --graph-batches 8
    run_step bench_decode_step_long "$B"/bench/bench_decode_step --batch 4,32 --context 16384 --steps 16
    # The same step with ATen operators in place of the fused layer kernels, for the side-by-side.
    run_step bench_decode_step_unfused "$B"/bench/bench_decode_step --batch 4,32 --context 4096 --steps 16 \
      --sparsity 0 --fused on,off
  fi
  # Rollouts of the toy model (rlkv eval: the actors' generator) on the GPU, eager and with graphs (the
  # default there), and on the CPU's cores: problems per second, load and all.
  "$B"/launch/rlkv toy data --n 1000 --seed 20261129 --output /tmp/rlkv-toy-problems.jsonl > /dev/null
  for dev in "cuda --max-batch 256 --runtime.cuda_graphs=false" "cuda --max-batch 256" "cpu --runtime.threads=$(nproc)"; do
    t0=$(date +%s.%N)
    run_step "eval_toy_${dev%% *}" "$B"/launch/rlkv eval --config configs/toy.ini --data /tmp/rlkv-toy-problems.jsonl \
      --method full --runtime.device=$dev
    note "eval on $dev: $(python3 -c "print(f'{1000 / ($(date +%s.%N) - $t0):.1f} problems/s')")"
  done
  # rlkv train with its actor on the GPU (the toy config, 300 steps), then 50 steps of the same on the
  # CPU's cores: rollouts/s side by side, and the heads the GPU run learned (rlkv inspect).
  if [[ -z "$QUICK" ]]; then
    for dev in cuda cpu; do
      steps=$([[ $dev == cuda ]] && echo 300 || echo 50)
      limit=$([[ $dev == cuda ]] && echo 180 || echo 120)  # seconds; the CPU ran 300 steps in 36 s on 2 cores
      rm -rf "/tmp/rlkv-train-$dev"
      run_step "train_toy_$dev" timeout $limit "$B"/launch/rlkv train --config configs/toy.ini --runtime.device=$dev \
        --runtime.threads="$(nproc)" --train.steps=$steps --train.checkpoint_every=50 --train.output_dir="/tmp/rlkv-train-$dev"
      note "train on $dev: $(grep -o '[0-9.]* rollouts/s' "$OUT/log.txt" | tail -n 5 | tr '\n' ' ')"
    done
    ckpt=$(tools/newest_ckpt.sh /tmp/rlkv-train-cuda)
    [[ -n "$ckpt" ]] && "$B"/launch/rlkv inspect "$ckpt" | sed -n 5,15p | tee -a "$OUT/summary.txt"
  fi
fi
finish
