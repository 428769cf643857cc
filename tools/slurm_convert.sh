#!/usr/bin/env bash
# Converts a release as a Slurm array job, one shard per task, then joins the shards:
#
#   sbatch --array=1-16 --partition=cpu --cpus-per-task=8 tools/slurm_convert.sh ROOT OUT [convert options]
#   # when every task has finished:
#   mammo-det merge OUT OUT/shards/*-of-16
#
# Task K writes OUT/shards/K-of-N (N = the array size). A task that is rerun (requeued, or submitted again after a
# failure) resumes its shard from the journal. PYTHON picks the interpreter with mammo-det installed (default:
# python; e.g. PYTHON=$PWD/.venv/bin/python), exported to the job by sbatch.
#SBATCH --job-name=mammo-det-convert
#SBATCH --output=slurm-convert-%A_%a.out
set -euo pipefail
ROOT=$1
OUT=$2
shift 2
K=${SLURM_ARRAY_TASK_ID:?run as a Slurm array job: sbatch --array=1-N tools/slurm_convert.sh ROOT OUT}
N=${SLURM_ARRAY_TASK_COUNT:?run as a Slurm array job}
"${PYTHON:-python}" -m mammo_det convert "$ROOT" "$OUT/shards/$K-of-$N" --shard "$K/$N" \
    --workers "${SLURM_CPUS_PER_TASK:-0}" "$@"
