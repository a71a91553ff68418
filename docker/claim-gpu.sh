#!/bin/sh
# Entry point of the GPU worker image: optionally claims one GPU of the host, then runs the command.
#
# Docker gives every replica of a service with `count: 1` the same first GPU, so `--scale worker=N` alone puts
# N workers on one GPU. With ATELIER_GPU_LOCK_DIR set (docker-compose.multi-gpu.yml: every GPU visible, the
# directory a volume shared by the workers of this host) the worker takes the first GPU whose lock file no
# other worker holds: an exclusive flock on file descriptor 9, inherited by the command and so held until the
# worker exits (the kernel frees it even on SIGKILL). It then sees only that GPU (CUDA_VISIBLE_DEVICES).
set -eu

claim_gpu() {
    lock_dir=$1
    uuids=$(nvidia-smi --query-gpu=uuid --format=csv,noheader) || {
        echo "claim-gpu: nvidia-smi failed: is the NVIDIA Container Toolkit installed and a GPU reserved?" >&2
        exit 1
    }
    count=0
    for uuid in $uuids; do
        count=$((count + 1))
        exec 9>"$lock_dir/$uuid.lock"
        if flock --nonblock 9; then
            CUDA_VISIBLE_DEVICES=$uuid
            export CUDA_VISIBLE_DEVICES
            echo "claim-gpu: this worker uses GPU $uuid" >&2
            return 0
        fi
        exec 9>&-
    done
    echo "claim-gpu: all $count GPUs of this host are taken by other workers; run at most $count workers here" >&2
    exit 1
}

if [ -n "${ATELIER_GPU_LOCK_DIR:-}" ] && [ -z "${CUDA_VISIBLE_DEVICES:-}" ]; then
    claim_gpu "$ATELIER_GPU_LOCK_DIR"
fi
exec "$@"
