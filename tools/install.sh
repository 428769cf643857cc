#!/usr/bin/env bash
# Creates .venv with torch, mmcv (built with its compiled ops), mmdet and mammo-det.
# Idempotent: every step checks first and does nothing when its part is already there.
#
# Environment knobs:
#   PYTHON=python3.11        interpreter that creates the venv
#   VENV=.venv               where the venv lives
#   TORCH_SPEC=torch==2.13.0 torch to install when the venv has none (a CUDA torch already there is kept)
#   SYSTEM_SITE_PACKAGES=1   create the venv with --system-site-packages (reuse a GPU image's torch)
#   WHEELHOUSE=DIR           install offline from DIR (wheels and source archives; pip --no-index --find-links)
#   MAX_JOBS=N               parallel compile jobs for the mmcv build (default: the cores, capped by memory)
#   TORCH_CUDA_ARCH_LIST     GPU architectures of mmcv's CUDA ops (default: the visible GPUs', else
#                            "7.0;7.5;8.0;8.6;8.9;9.0+PTX": V100, T4, A100, A10/RTX 30, L4/RTX 40, H100/H200)
#   MMCV_BUILD_DIR=DIR       build mmcv in DIR, in place: a build cut short (a job's time limit) resumes from the
#                            objects already compiled there when run again (tools/gpu_check.sh uses it)
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MMCV_SPEC=${MMCV_SPEC:-mmcv==2.1.0}
DEFAULT_ARCHS="7.0;7.5;8.0;8.6;8.9;9.0+PTX"

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    venv_args=()
    [ "${SYSTEM_SITE_PACKAGES:-0}" = 1 ] && venv_args+=(--system-site-packages)
    say "creating $VENV with $PYTHON ${venv_args[*]:-}"
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
py="$(realpath "$VENV")/bin/python"
pip_args=(--disable-pip-version-check)
[ -n "${WHEELHOUSE:-}" ] && pip_args+=(--no-index --find-links "$WHEELHOUSE")
pip() { "$py" -m pip install "${pip_args[@]}" "$@"; }

if "$py" -c 'import torch' 2>/dev/null; then
    say "keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
else
    say "installing $TORCH_SPEC"
    pip "$TORCH_SPEC"
fi
torch_cuda=$("$py" -c 'import torch; print(torch.version.cuda or "")')
torch_id=$("$py" -c 'import torch; print(torch.__version__)')
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)

# An mmcv is kept only if its compiled ops load, it was built for this torch, and, with a CUDA torch, its CUDA ops
# were compiled (and run, where a GPU is visible): a CPU-only mmcv cannot run detectors on the GPU.
mmcv_ok() {
    local built_for
    built_for=$(cat "$VENV/.mmcv-built-for" 2>/dev/null || true)
    # Built here for another torch: rebuild. An mmcv installed by other means is judged by its ops alone.
    [ -z "$built_for" ] || [ "$built_for" = "$torch_id" ] || return 1
    "$py" - <<'PY' 2>/dev/null
import torch
from mmcv.ops import nms
from mmcv.ops import get_compiling_cuda_version
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
assert len(nms(boxes, scores, 0.5)[1]) == 2
if torch.version.cuda:
    assert get_compiling_cuda_version() not in ('', 'not available'), 'mmcv was built without CUDA ops'
    if torch.cuda.is_available():
        assert len(nms(boxes.cuda(), scores.cuda(), 0.5)[1]) == 2
PY
}

if mmcv_ok; then
    say "keeping mmcv $("$py" -c 'import mmcv; print(mmcv.__version__)') with compiled ops for torch $torch_id"
else
    pip "setuptools<70" wheel ninja
    cores=$(nproc)
    mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
    per_job=2  # GB one compile job may take; nvcc jobs take about 4
    build_env=(MMCV_WITH_OPS=1)
    no_cache=()
    if [ -n "$torch_cuda" ]; then
        if ! command -v nvcc >/dev/null; then
            die "torch $torch_id is built for CUDA $torch_cuda but nvcc is not on PATH: mmcv's CUDA ops cannot be \
compiled. Install the CUDA $torch_cuda toolkit (e.g. 'module load cuda/$torch_cuda', or conda install -c nvidia \
cuda-nvcc=$torch_cuda cuda-cudart-dev=$torch_cuda) and set CUDA_HOME, then rerun make install"
        fi
        per_job=4
        archs=${TORCH_CUDA_ARCH_LIST:-}
        if [ -z "$archs" ] && [ "$gpus" -gt 0 ]; then
            archs=$("$py" -c 'import torch; print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})))')
        fi
        archs=${archs:-$DEFAULT_ARCHS}
        build_env+=(FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$archs")
        no_cache=(--no-cache-dir)  # never reuse (nor store) a wheel that pip's cache may hold from a CPU build
        say "CUDA torch ($torch_cuda) and nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'): building mmcv's CUDA ops for $archs"
    fi
    jobs=${MAX_JOBS:-$(( mem_gb / per_job < cores ? mem_gb / per_job : cores ))}
    [ "$jobs" -ge 1 ] || jobs=1
    build_env+=("MAX_JOBS=$jobs")
    say "building $MMCV_SPEC from source with compiled ops, $jobs jobs (about 13 minutes on 2 cores the first time)"
    start=$(date +%s)
    "$py" -m pip uninstall -y -q mmcv 2>/dev/null || true
    if [ -n "${MMCV_BUILD_DIR:-}" ]; then
        # In place, so ninja skips every object an earlier, interrupted build already compiled.
        build_dir=$(realpath -m "$MMCV_BUILD_DIR")
        src="$build_dir/${MMCV_SPEC/==/-}"
        if [ ! -f "$src/setup.py" ]; then
            mkdir -p "$build_dir"
            "$py" -m pip download "${pip_args[@]}" --no-deps --no-binary :all: -d "$build_dir" "$MMCV_SPEC"
            tar -xzf "$build_dir/${MMCV_SPEC/==/-}.tar.gz" -C "$build_dir"
        fi
        say "building in $src (resumable)"
        (cd "$src" && env "${build_env[@]}" "$py" setup.py bdist_wheel -d "$build_dir/dist" >&2)
        pip --no-deps "$(ls -t "$build_dir"/dist/mmcv-*.whl | head -n 1)"
    else
        env "${build_env[@]}" "$py" -m pip install "${pip_args[@]}" "${no_cache[@]}" --no-build-isolation "$MMCV_SPEC"
    fi
    echo "$torch_id" > "$VENV/.mmcv-built-for"
    say "mmcv build and install took $(( $(date +%s) - start )) s"
    mmcv_ok || die "the mmcv just built does not run its ops for torch $torch_id (see above)"
fi

say "installing mammo-det (editable) with its dependencies"
pip --no-build-isolation -e ".[dev]"
say "done: $("$py" -c 'import mmdet, mmcv, mmengine, torch; from mmcv.ops import get_compiling_cuda_version as c; print(f"torch {torch.__version__}, mmcv {mmcv.__version__} (CUDA ops: {c()}), mmengine {mmengine.__version__}, mmdet {mmdet.__version__}")')"
