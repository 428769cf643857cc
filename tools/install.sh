#!/usr/bin/env bash
# Creates .venv with torch, mmcv (built with its compiled ops), mmdet and mammo-det; `make install` runs it.
# Idempotent: every step checks first and does nothing when its part is already there.
#
# torch: a torch the venv can already import is kept (a cluster's own build, SYSTEM_SITE_PACKAGES=1). Otherwise
# TORCH_SPEC from PyPI, which on Linux is a CUDA build (about 3.5 GB with its NVIDIA libraries; it runs on a CPU
# too), or from TORCH_INDEX_URL: https://download.pytorch.org/whl/cpu is the CPU build (about 0.2 GB).
#
# mmcv 2.1.0 exists only as source and is built here, once per torch and kind of ops, then kept as a wheel in
# MMCV_WHEEL_DIR:
#   CPU ops only   a CPU torch; a CUDA torch with no GPU visible and no CUDA build asked for; or MMCV_CUDA=0.
#   CUDA ops too   a CUDA torch and a GPU visible, TORCH_CUDA_ARCH_LIST given, or MMCV_CUDA=1 (or FORCE_CUDA=1).
#                  The architectures are checked against what the toolkit's nvcc lists before anything compiles.
#                  The toolkit: CUDA_HOME, else nvcc on PATH when it is torch's CUDA major version, else nvcc, the
#                  runtime headers and CCCL from NVIDIA's PyPI packages for torch's CUDA, installed beside the
#                  venv's packages (in $VENV/cuda-toolkit). The math-library headers torch's own headers include
#                  (cuBLAS, cuSPARSE, ...) come from the NVIDIA packages installed with torch; a minimal toolkit lacks
#                  them. The compiler sees one include folder assembled from both ($VENV/cuda-home).
#
# Environment knobs:
#   PYTHON=python3.11        interpreter that creates the venv
#   VENV=.venv               where the venv lives
#   TORCH_SPEC=torch==2.13.0 torch to install when the venv has none
#   TORCH_INDEX_URL=URL      pip index for torch (e.g. https://download.pytorch.org/whl/cpu, .../whl/cu126)
#   SYSTEM_SITE_PACKAGES=1   create the venv with --system-site-packages (reuse a GPU image's torch)
#   WHEELHOUSE=DIR           install offline from DIR (wheels and source archives; pip --no-index --find-links)
#   MMCV_CUDA=auto|0|1       mmcv's CUDA ops: auto (above), 0 never, 1 always (stops where impossible)
#   TORCH_CUDA_ARCH_LIST     GPU architectures of the CUDA ops, e.g. "8.0;9.0" (default: the visible GPUs', else
#                            those of DEFAULT_ARCHS that the toolkit supports, the last with +PTX)
#   CUDA_HOME                the CUDA toolkit to compile with
#   MMCV_WHEEL_DIR=DIR       built mmcv wheels, one folder per torch and ops (default ~/.cache/mammo-det/wheels)
#   MMCV_BUILD_DIR=DIR       build mmcv in DIR, in place: a build cut short (a job's time limit) resumes from the
#                            objects already compiled there when run again
#   MAX_JOBS=N               parallel compile jobs (default: the cores, capped by memory)
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MMCV_SPEC=${MMCV_SPEC:-mmcv==2.1.0}
MMCV_WHEEL_DIR=${MMCV_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mammo-det/wheels}
# V100, T4, A100, A10/RTX 30, L4/RTX 40, H100/H200; those the toolkit no longer supports are left out.
DEFAULT_ARCHS="7.0;7.5;8.0;8.6;8.9;9.0"

say() { printf '[install] %s\n' "$*" >&2; }  # stderr: the functions below return values on stdout
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

# --- the venv and torch ---------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    venv_args=()
    [ "${SYSTEM_SITE_PACKAGES:-0}" = 1 ] && venv_args+=(--system-site-packages)
    say "creating $VENV with $PYTHON ${venv_args[*]:-}"
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
VENV=$(realpath "$VENV")
py="$VENV/bin/python"
pip_args=(--disable-pip-version-check)
[ -n "${WHEELHOUSE:-}" ] && pip_args+=(--no-index --find-links "$WHEELHOUSE")
pip() { "$py" -m pip install "${pip_args[@]}" "$@"; }

if "$py" -c 'import torch' 2>/dev/null; then
    say "keeping torch $("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
elif [ -n "${TORCH_INDEX_URL:-}" ] && [ -z "${WHEELHOUSE:-}" ]; then
    say "installing $TORCH_SPEC from $TORCH_INDEX_URL"
    pip --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
else
    say "installing $TORCH_SPEC from ${WHEELHOUSE:-PyPI} (on Linux a CUDA build, about 3.5 GB, that also runs on a CPU;" \
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gives the 0.2 GB CPU build)"
    pip "$TORCH_SPEC"
fi
# torch version, its CUDA (or -), the visible GPUs' compute capabilities (or -)
facts=$("$py" - 2>/dev/null <<'PY'
import torch
try:
    caps = sorted({'%d.%d' % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}) \
        if torch.cuda.is_available() else []
except Exception:  # a broken driver: no usable GPU
    caps = []
print(torch.__version__, torch.version.cuda or '-', ';'.join(caps) or '-')
PY
) || true
read -r torch_id torch_cuda gpu_archs <<<"$facts"
[ -n "${torch_id:-}" ] || die "torch does not import in $VENV (see: $py -c 'import torch')"
[ "$torch_cuda" = - ] && torch_cuda=
[ "$gpu_archs" = - ] && gpu_archs=

# --- which mmcv ops -------------------------------------------------------------------------------------------
want=${MMCV_CUDA:-auto}
[ "${FORCE_CUDA:-0}" = 1 ] && [ "$want" = auto ] && want=1
case "$want" in auto|0|1) ;; *) die "MMCV_CUDA=$want: use auto, 0 or 1" ;; esac
if [ -z "$torch_cuda" ]; then
    [ "$want" = 1 ] && die "MMCV_CUDA=1 asks for CUDA ops, but torch $torch_id is a CPU build: install a CUDA torch" \
        "first (remove $VENV, then make install with TORCH_INDEX_URL=https://download.pytorch.org/whl/cu<version>)"
    ops=cpu
    why="torch $torch_id is a CPU build"
elif [ "$want" = 0 ]; then
    ops=cpu
    why="MMCV_CUDA=0"
elif [ "$want" = 1 ] || [ -n "${TORCH_CUDA_ARCH_LIST:-}" ] || [ -n "$gpu_archs" ]; then
    ops=cuda
else
    ops=cpu
    why="torch $torch_id is a CUDA build, but no GPU is visible and no CUDA build was asked for (TORCH_CUDA_ARCH_LIST \
or MMCV_CUDA=1)"
fi
archs=${TORCH_CUDA_ARCH_LIST:-$gpu_archs}  # empty: the default list, once the toolkit is known
archs=${archs// /;}

# An mmcv is kept only if its compiled ops run, it was built here for this torch (or installed by other means), and
# where CUDA ops are wanted it has them for the architectures asked for (and they run, where a GPU is visible).
mmcv_ok() {  # $1=verbose: the check's errors on stderr (default: nowhere)
    local stamp built_torch built_ops a
    stamp=$(cat "$VENV/.mmcv-built-for" 2>/dev/null || true)
    if [ -n "$stamp" ]; then
        read -r built_torch built_ops <<<"$stamp"
        [ "$built_torch" = "$torch_id" ] || return 1
        if [ "$ops" = cuda ] && [ -n "$archs" ]; then
            for a in ${archs//;/ }; do
                [[ ";${built_ops#cuda*-sm};" == *";${a%+PTX};"* ]] || return 1
            done
        fi
    fi
    # fd 4, not 2>/dev/stderr: reopening /dev/stderr truncates a log file the installer's output goes to.
    if [ "${1:-}" = verbose ]; then exec 4>&2; else exec 4>/dev/null; fi
    NEED_CUDA=$([ "$ops" = cuda ] && echo 1 || echo 0) "$py" - <<'PY' 2>&4
import os
import torch
from mmcv.ops import get_compiling_cuda_version, nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
assert len(nms(boxes, scores, 0.5)[1]) == 2
if os.environ['NEED_CUDA'] == '1':
    assert get_compiling_cuda_version() not in ('', 'not available'), 'mmcv was built without CUDA ops'
    if torch.cuda.is_available():
        assert len(nms(boxes.cuda(), scores.cuda(), 0.5)[1]) == 2
PY
}

# --- the CUDA toolkit -----------------------------------------------------------------------------------------
nvcc_release() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1; }

# The toolkit folder an nvcc belongs to (nvcc itself says; a wrapper script on PATH would mislead dirname).
nvcc_top() {
    local top
    top=$("$1" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
    realpath "${top:-$(dirname "$1")/..}"
}

# nvcc, the runtime headers and CCCL of torch's CUDA from NVIDIA's PyPI packages, into $VENV/cuda-toolkit.
pip_toolkit() {
    local major=${torch_cuda%%.*} v="${torch_cuda}.*" dest="$VENV/cuda-toolkit" pkgs
    if [ "$major" -ge 13 ]; then
        pkgs=("nvidia-cuda-nvcc==$v" "nvidia-cuda-runtime==$v" "nvidia-cuda-crt==$v" "nvidia-nvvm==$v"
              "nvidia-cuda-cccl==$v")
    else
        pkgs=("nvidia-cuda-nvcc-cu$major==$v" "nvidia-cuda-runtime-cu$major==$v" "nvidia-cuda-cccl-cu$major==$v")
    fi
    if [ ! -f "$dest/.complete" ]; then
        say "no CUDA toolkit given (CUDA_HOME) or on PATH for CUDA $major: taking nvcc, the runtime headers and CCCL" \
            "from NVIDIA's PyPI packages (${pkgs[*]}) into $dest"
        rm -rf "$dest"
        "$py" -m pip install "${pip_args[@]}" --no-deps --target "$dest" "${pkgs[@]}" >&2
        touch "$dest/.complete"
    fi
    local nvcc
    nvcc=$(ls "$dest"/nvidia/*/bin/nvcc 2>/dev/null | head -n 1)
    [ -n "$nvcc" ] || die "the NVIDIA packages in $dest hold no bin/nvcc"
    chmod +x "$(dirname "$nvcc")"/* "$(dirname "$(dirname "$nvcc")")"/nvvm/bin/* 2>/dev/null || true
    echo "$nvcc"
}

# CUDA_HOME for torch's extension build: the toolkit's folders, and one include (and lib64) folder that adds to the
# toolkit's headers those it lacks from NVIDIA's packages (the pip toolkit's, then the venv's math libraries).
assemble_cuda_home() {
    local top=$1 home="$VENV/cuda-home" src entry name
    rm -rf "$home"
    mkdir -p "$home/include" "$home/lib64"
    for entry in "$top"/*; do
        name=$(basename "$entry")
        case "$name" in include|lib|lib64) ;; *) ln -s "$entry" "$home/$name" ;; esac
    done
    local includes=("$top/include")
    mapfile -t -O 1 includes < <(
        { ls -d "$VENV"/cuda-toolkit/nvidia/*/include 2>/dev/null || true
          "$py" -c 'import glob, os, nvidia; print("\n".join(sorted(d for p in nvidia.__path__
                    for d in glob.glob(os.path.join(p, "*", "include")))))' 2>/dev/null || true; } | grep -vx "$top/include")
    for src in "${includes[@]}"; do
        [ -d "$src" ] || continue
        for entry in "$src"/*; do
            name=$(basename "$entry")
            [ -e "$home/include/$name" ] || ln -s "$(realpath "$entry")" "$home/include/$name"
        done
    done
    for src in "$top/lib64" "$top/lib" "$VENV"/cuda-toolkit/nvidia/*/lib; do
        [ -d "$src" ] || continue
        for entry in "$src"/*; do
            name=$(basename "$entry")
            [ -e "$home/lib64/$name" ] || ln -s "$(realpath "$entry")" "$home/lib64/$name"
        done
    done
    # The packages ship libcudart.so.N only; the linker's -lcudart wants the unversioned name.
    if [ ! -e "$home/lib64/libcudart.so" ]; then
        entry=$(ls "$home"/lib64/libcudart.so.* 2>/dev/null | head -n 1)
        [ -n "$entry" ] && ln -s "$(basename "$entry")" "$home/lib64/libcudart.so"
    fi
    echo "$home"
}

# The toolkit's nvcc: CUDA_HOME's, else PATH's when it is torch's CUDA major version, else NVIDIA's packages.
find_nvcc() {
    local nvcc rel major=${torch_cuda%%.*}
    if [ -n "${CUDA_HOME:-}" ]; then
        nvcc="$CUDA_HOME/bin/nvcc"
        [ -x "$nvcc" ] || die "CUDA_HOME=$CUDA_HOME has no bin/nvcc"
        rel=$(nvcc_release "$nvcc")
        [ "${rel%%.*}" = "$major" ] || die "CUDA_HOME=$CUDA_HOME is CUDA ${rel:-?}, but torch $torch_id is built for CUDA" \
            "$torch_cuda: use a CUDA $major toolkit, or unset CUDA_HOME to take one from NVIDIA's PyPI packages"
    elif nvcc=$(command -v nvcc) && rel=$(nvcc_release "$nvcc") && [ "${rel%%.*}" = "$major" ]; then
        :
    else
        [ -n "${nvcc:-}" ] && say "nvcc on PATH ($nvcc) is CUDA ${rel:-?}, torch $torch_id needs CUDA $major"
        nvcc=$(pip_toolkit)
    fi
    echo "$nvcc"
}

# The toolkit that still compiles for an architecture CUDA $1 dropped.
last_toolkit_for() {
    local major=${1%%.*}
    if [ "$major" -lt 5 ]; then echo "CUDA 11.8"; elif [ "$major" -lt 7 ] || [ "$1" = 7.0 ] || [ "$1" = 7.2 ]; then
        echo "CUDA 12.x"; else echo "an older CUDA"; fi
}

# Checks $archs against the toolkit (or picks the default list); sets archs.
check_archs() {
    local nvcc=$1 rel supported a bad=() keep=()
    rel=$(nvcc_release "$nvcc")
    supported=$("$nvcc" --list-gpu-arch 2>/dev/null | sed -n 's/^compute_\([0-9]*\)\([0-9]\)[a-z]*$/\1.\2/p' | sort -u \
        | paste -sd ';')
    [ -n "$supported" ] || die "$nvcc --list-gpu-arch lists no architectures"
    if [ -z "$archs" ]; then
        for a in ${DEFAULT_ARCHS//;/ }; do
            if [[ ";$supported;" == *";$a;"* ]]; then keep+=("$a"); else bad+=("$a"); fi
        done
        [ ${#keep[@]} -gt 0 ] || die "CUDA $rel supports none of $DEFAULT_ARCHS; set TORCH_CUDA_ARCH_LIST"
        archs="$(IFS=';'; echo "${keep[*]}")+PTX"
        [ ${#bad[@]} -eq 0 ] || say "CUDA $rel no longer supports ${bad[*]}: the default architectures are $archs"
        return
    fi
    for a in ${archs//;/ }; do
        [[ ";$supported;" == *";${a%+PTX};"* ]] || bad+=("${a%+PTX} (kept by $(last_toolkit_for "${a%+PTX}"))")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        local from="TORCH_CUDA_ARCH_LIST=$archs"
        [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && from="the visible GPUs (compute capability $archs)"
        die "$from: CUDA $rel ($nvcc) cannot compile for ${bad[*]}; it supports ${supported//;/ }." \
            "Build with that toolkit and a torch for it (e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 and" \
            "a CUDA 12 toolkit for Volta), or leave those architectures out of TORCH_CUDA_ARCH_LIST"
    fi
}

# --- mmcv -----------------------------------------------------------------------------------------------------
# A wheel built here earlier for this torch and these ops (CUDA: these architectures, whatever CUDA 13.x/12.x
# release compiled them), found before any toolkit is looked for: a GPU node without nvcc or network reuses it.
cached_wheel() {
    local pattern="$MMCV_WHEEL_DIR/${MMCV_SPEC/==/-}_torch-${torch_id}_$1"
    ls $pattern/mmcv-*.whl 2>/dev/null | head -n 1 || true
}

if mmcv_ok; then
    say "keeping mmcv $("$py" -c 'import mmcv; print(mmcv.__version__)') with compiled ops for torch $torch_id"
else
    build_env=(MMCV_WITH_OPS=1)
    per_job=2  # GB one compile job may take; nvcc jobs take about 4
    wheel=
    if [ "$ops" = cuda ] && [ -n "$archs" ]; then
        arch_key=${archs//+PTX/}
        wheel=$(cached_wheel "cuda*-sm${arch_key//;/-}")
        key=$(basename "$(dirname "$wheel")" | sed 's/.*_//')
    fi
    if [ -n "$wheel" ]; then
        :
    elif [ "$ops" = cuda ]; then
        nvcc=$(find_nvcc)
        check_archs "$nvcc"
        top=$(nvcc_top "$nvcc")
        cuda_home=$(assemble_cuda_home "$top")
        rel=$(nvcc_release "$nvcc")
        key="cuda${rel}-sm${archs//+PTX/}"
        per_job=4
        build_env+=(FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$archs" "CUDA_HOME=$cuda_home" "PATH=$cuda_home/bin:$PATH")
        say "CUDA torch ($torch_cuda) and nvcc $rel ($top): building mmcv's CUDA ops for $archs"
    else
        key=cpu
        # Hidden GPUs and FORCE_CUDA=0: mmcv's setup.py then builds its CPU extension whatever torch carries.
        build_env+=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
        say "building mmcv's CPU ops only: $why"
    fi
    wheel_dir="$MMCV_WHEEL_DIR/${MMCV_SPEC/==/-}_torch-${torch_id}_${key//;/-}"
    wheel=${wheel:-$(cached_wheel "${key//;/-}")}
    if [ -n "$wheel" ]; then
        say "reusing $wheel (built here earlier for torch $torch_id)"
    else
        "$py" -m pip install "${pip_args[@]}" -q "setuptools<70" wheel ninja
        cores=$(nproc)
        mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
        jobs=${MAX_JOBS:-$(( mem_gb / per_job < cores ? mem_gb / per_job : cores ))}
        [ "$jobs" -ge 1 ] || jobs=1
        build_env+=("MAX_JOBS=$jobs")
        say "building $MMCV_SPEC from source, $jobs jobs (about 13 minutes on 2 cores for CPU ops, 40 for one GPU" \
            "architecture)"
        start=$(date +%s)
        mkdir -p "$MMCV_WHEEL_DIR"
        tmp=$(mktemp -d "$MMCV_WHEEL_DIR/.build.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        if [ -n "${MMCV_BUILD_DIR:-}" ]; then
            # In place, so ninja skips every object an earlier, interrupted build already compiled.
            build_dir=$(realpath -m "$MMCV_BUILD_DIR/$key")
            src="$build_dir/${MMCV_SPEC/==/-}"
            if [ ! -f "$src/setup.py" ]; then
                mkdir -p "$build_dir"
                "$py" -m pip download "${pip_args[@]}" --no-deps --no-build-isolation --no-binary :all: -d "$build_dir" \
                    "$MMCV_SPEC"
                tar -xzf "$build_dir/${MMCV_SPEC/==/-}.tar.gz" -C "$build_dir"
            fi
            say "building in $src (resumable)"
            (cd "$src" && env "${build_env[@]}" "$py" setup.py bdist_wheel -d "$tmp" >&2)
        else
            env "${build_env[@]}" "$py" -m pip wheel "${pip_args[@]}" --no-deps --no-build-isolation --no-cache-dir \
                -w "$tmp" "$MMCV_SPEC"
        fi
        built=$(ls "$tmp"/mmcv-*.whl | head -n 1)
        mkdir -p "$wheel_dir"
        wheel="$wheel_dir/$(basename "$built")"
        mv "$built" "$wheel.part" && mv "$wheel.part" "$wheel"  # a wheel in the cache is always whole
        say "mmcv build took $(( $(date +%s) - start )) s: $wheel ($(du -h "$wheel" | cut -f1))"
    fi
    "$py" -m pip uninstall -y -q mmcv 2>/dev/null || true
    # With its dependencies (numpy, mmengine, ...): the check below imports mmcv, and a fresh venv has none of them.
    pip "$wheel"
    echo "$torch_id $key" > "$VENV/.mmcv-built-for"
    mmcv_ok verbose || die "the mmcv in $wheel does not run its ops for torch $torch_id (see above)"
fi

say "installing mammo-det (editable) with its dependencies"
pip --no-build-isolation -e ".[dev]"
say "done: $("$py" -c 'import mmdet, mmcv, mmengine, torch; from mmcv.ops import get_compiling_cuda_version as c; print(f"torch {torch.__version__}, mmcv {mmcv.__version__} (CUDA ops: {c()}), mmengine {mmengine.__version__}, mmdet {mmdet.__version__}")')"
