#!/usr/bin/env bash
# The GPU check, from a fresh clone on a machine with a GPU (about 10 minutes on 16 cores and one recent GPU):
#   1. make install, building mmcv's CUDA ops for the visible GPU only, in place under .cache/ so that a build cut
#      short by a time limit resumes where it stopped when the script runs again;
#   2. the tests marked gpu (CUDA NMS/RoIAlign/focal loss/deformable attention, an AMP step per config, nccl DDP);
#   3. tools/benchmarks/train_speed.py (loaders old vs lean, per-config fp32/AMP images/s and peak memory, the data
#      time of one real epoch);
#   4. one summary: OUT/gpu_check.json and OUT/gpu_check.md (versions, compiled CUDA, each check, the numbers).
# Usage: bash tools/gpu_check.sh [OUT]     (OUT defaults to work_dirs/gpu_check; knobs: PYTHON, VENV, MAX_JOBS)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-work_dirs/gpu_check}
mkdir -p "$OUT"
VENV=${VENV:-.venv}
say() { printf '[gpu_check] %s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    say "no GPU visible (nvidia-smi -L fails): this check needs one"
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1

start=$(date +%s)
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    # The visible GPU's compute capability, e.g. 9.0 on H100/H200: one architecture compiles in a fraction of the time.
    TORCH_CUDA_ARCH_LIST=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | sort -u | paste -sd ';')
    export TORCH_CUDA_ARCH_LIST
fi
say "install (mmcv CUDA ops for $TORCH_CUDA_ARCH_LIST: a wheel in .cache/wheels built for this torch and these architectures is reused; else a resumable build in .cache/mmcv-build)"
MMCV_WHEEL_DIR=${MMCV_WHEEL_DIR:-.cache/wheels} MMCV_BUILD_DIR=.cache/mmcv-build make install VENV="$VENV" > "$OUT/install.log" 2>&1
install_rc=$?
install_s=$(( $(date +%s) - start ))
py="$VENV/bin/python"

tests_rc=99 bench_rc=99
if [ "$install_rc" = 0 ]; then
    say "tests marked gpu"
    "$py" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" tests > "$OUT/gpu_tests.log" 2>&1
    tests_rc=$?
    say "throughput benchmark"
    "$py" tools/benchmarks/train_speed.py --json "$OUT/train_speed.json" > "$OUT/train_speed.log" 2>&1
    bench_rc=$?
fi
"${PYTHON:-$py}" tools/gpu_summary.py "$OUT" --install-rc "$install_rc" --install-seconds "$install_s" \
    --tests-rc "$tests_rc" --bench-rc "$bench_rc" --python "$py"
summary_rc=$?
say "summary: $OUT/gpu_check.md and $OUT/gpu_check.json ($(( $(date +%s) - start )) s in all)"
[ "$install_rc" = 0 ] && [ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$summary_rc" = 0 ]
