#!/bin/sh
# Starts the Celery worker of one container: one job at a time (one GPU, or the CPU), prefetch 1.
# Queues: ATELIER_WORKER_QUEUES (comma-separated, e.g. "gpu" or "gpu,cpu"); by default the one queue the web
# sends to (ATELIER_QUEUE_NAME, default "atelier"). Extra arguments go to `celery worker`.
set -eu
queues="${ATELIER_WORKER_QUEUES:-${ATELIER_QUEUE_NAME:-atelier}}"
exec celery --app worker.celery_app worker \
    --loglevel "${ATELIER_LOG_LEVEL:-INFO}" \
    --concurrency 1 \
    --prefetch-multiplier 1 \
    --queues "$queues" \
    "$@"
