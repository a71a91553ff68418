#!/usr/bin/env bash
# `make run`: Redis (started here only if none answers at ATELIER_REDIS_URL), one Celery worker and
# the web app on http://127.0.0.1:${PORT:-8000}. Ctrl-C or SIGTERM stops everything started here.
# Settings come from the environment (ATELIER_*, see docs/api.md); offline demos without the
# ImageNet weights: ATELIER_WEIGHTS=random make run
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
VENV_BIN="${VENV_BIN:-.venv/bin}"
PY="$VENV_BIN/python"
STOP_GRACE_SECONDS="${STOP_GRACE_SECONDS:-15}"

# Read (and validate) the settings once; a bad ATELIER_* value stops here with pydantic's message.
eval "$("$PY" - <<'EOF'
import shlex
from urllib.parse import urlparse

from core.settings import get_settings

s = get_settings()
url = urlparse(s.redis_url)
for name, value in {
    "REDIS_URL": s.redis_url,
    "REDIS_HOST": url.hostname or "127.0.0.1",
    "REDIS_PORT": url.port or 6379,
    "QUEUE_NAME": s.queue_name,
    "STORAGE_DIR": s.storage_dir,
    "WEIGHTS": s.weights,
    "WEIGHTS_FILE": s.model_dir / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "LOG_LEVEL": s.log_level,
}.items():
    print(f"{name}={shlex.quote(str(value))}")
EOF
)"

pids=()
stopping=0

log() { echo "run.sh: $*" >&2; }

stop_all() {
    [ "$stopping" -eq 1 ] && return
    stopping=1
    log "stopping: ${pids[*]:-nothing}"
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Give a running job and the servers time to stop, then insist.
    local waited=0
    while [ "$waited" -lt "$STOP_GRACE_SECONDS" ]; do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 1
        waited=$((waited + 1))
    done
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "process $pid did not stop in ${STOP_GRACE_SECONDS} s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    log "stopped"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

redis_answers() {
    "$PY" -c "import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()" "$REDIS_URL" \
        >/dev/null 2>&1
}

if redis_answers; then
    log "using the Redis that answers at $REDIS_HOST:$REDIS_PORT"
else
    case "$REDIS_HOST" in
        127.0.0.1 | localhost | ::1) ;;
        *) log "no Redis answers at $REDIS_HOST:$REDIS_PORT and it is not local: start it, or fix ATELIER_REDIS_URL"
           exit 1 ;;
    esac
    command -v redis-server >/dev/null || { log "redis-server is not installed (make system-deps)"; exit 1; }
    mkdir -p data/redis
    log "starting redis-server on $REDIS_HOST:$REDIS_PORT (data in data/redis)"
    redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --dir data/redis --save 60 1 --appendonly no &
    pids+=($!)
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
    redis_answers || { log "redis-server did not answer"; exit 1; }
fi

mkdir -p "$STORAGE_DIR"
if [ "$WEIGHTS" = "imagenet" ] && [ ! -f "$WEIGHTS_FILE" ]; then
    log "note: no ImageNet VGG19 weights at $WEIGHTS_FILE; the first job downloads them, and fails with the"
    log "      engine's message if it cannot. Offline demo: ATELIER_WEIGHTS=random make run (output is not art)"
fi

# prefork with one child: one job at a time, and Celery's soft/hard time limits are enforced.
"$VENV_BIN/celery" -A worker.celery_app worker --pool=prefork --concurrency=1 -Q "$QUEUE_NAME" \
    --loglevel="$LOG_LEVEL" --without-gossip --without-mingle &
pids+=($!)

# Webhook deliveries (worker/webhooks.py): their own small worker, threads, no TensorFlow, so a
# delivery never waits behind a style transfer.
"$VENV_BIN/celery" -A worker.webhooks worker --pool=threads --concurrency=4 \
    --loglevel="$LOG_LEVEL" --without-gossip --without-mingle --hostname "webhooks@%h" &
pids+=($!)

# Open SSE streams must not hold up Ctrl-C: give them 5 s to close.
"$VENV_BIN/uvicorn" app.main:app --host 127.0.0.1 --port "$PORT" --timeout-graceful-shutdown 5 --log-level "$(echo "$LOG_LEVEL" | tr 'A-Z' 'a-z')" &
pids+=($!)
log "web app on http://127.0.0.1:$PORT (API docs: /docs); Ctrl-C stops everything"

# Whichever process ends first (a crash, or a signal to it alone) takes the others down with it.
set +e
wait -n "${pids[@]}"
status=$?
[ "$stopping" -eq 0 ] && log "a process exited (status $status); stopping the others"
stop_all
exit "$status"
