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
#   MAX_JOBS=N               parallel compile jobs for the mmcv build (default: all cores)
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MMCV_SPEC=${MMCV_SPEC:-mmcv==2.1.0}

say() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    venv_args=()
    [ "${SYSTEM_SITE_PACKAGES:-0}" = 1 ] && venv_args+=(--system-site-packages)
    say "creating $VENV with $PYTHON ${venv_args[*]:-}"
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
py="$VENV/bin/python"
pip_args=(--disable-pip-version-check)
[ -n "${WHEELHOUSE:-}" ] && pip_args+=(--no-index --find-links "$WHEELHOUSE")
pip() { "$py" -m pip install "${pip_args[@]}" "$@"; }

if "$py" -c 'import torch' 2>/dev/null; then
    say "keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
else
    say "installing $TORCH_SPEC"
    pip "$TORCH_SPEC"
fi

# mmcv: the registry has 2.1.0 only as source; its setup.py needs pkg_resources (setuptools<70) and the
# venv's torch, hence no build isolation (../shared/ENVIRONMENT.md).
if "$py" -c 'import mmcv, mmcv.ops; from mmcv.ops import nms' 2>/dev/null; then
    say "keeping mmcv $("$py" -c 'import mmcv; print(mmcv.__version__)') with compiled ops"
else
    pip "setuptools<70" wheel ninja
    build_env=(MMCV_WITH_OPS=1 "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
    if "$py" -c 'import sys, torch; sys.exit(0 if torch.version.cuda else 1)' && command -v nvcc >/dev/null; then
        say "CUDA torch and nvcc found: building mmcv's CUDA ops too"
        build_env+=(FORCE_CUDA=1)
    fi
    say "building $MMCV_SPEC from source with compiled ops (about 13 minutes on 2 cores the first time; pip caches the wheel)"
    start=$(date +%s)
    env "${build_env[@]}" "$py" -m pip install "${pip_args[@]}" --no-build-isolation "$MMCV_SPEC"
    say "mmcv build and install took $(( $(date +%s) - start )) s"
fi

say "installing mammo-det (editable) with its dependencies"
pip --no-build-isolation -e ".[dev]"
say "done: $("$py" -c 'import mmdet, mmcv, mmengine, torch; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}")')"
