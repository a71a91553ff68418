#!/usr/bin/env bash
# Makes sure a Docker engine answers: the one the docker CLI already reaches (DOCKER_HOST or the default
# socket), else a dockerd started here in the background (as root). `docker-engine.sh stop` stops the
# dockerd this script started, and only that one (make docker-test calls it last); Docker's layer cache
# stays on disk, so later runs still build warm. A broken environment ends with one line naming what is
# missing.
set -euo pipefail

pidfile=${ATELIER_DOCKERD_PIDFILE:-/run/atelier-dockerd.pid}

fail() {
    echo "docker-engine: $*" >&2
    exit 1
}

if [ "${1:-}" = stop ]; then
    [ -f "$pidfile" ] || exit 0 # an engine this script did not start is not ours to stop
    pid=$(cat "$pidfile")
    if kill "$pid" 2> /dev/null; then
        for _ in $(seq 60); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2> /dev/null && fail "dockerd ($pid) did not stop within 60 s"
    fi
    rm -f "$pidfile"
    exit 0
fi

command -v docker > /dev/null || fail "no docker CLI; install it: apt-get install docker.io"
if docker info > /dev/null 2>&1; then
    exit 0
fi
command -v dockerd > /dev/null \
    || fail "no Docker engine answers and dockerd is not installed; apt-get install docker.io, or start Docker"
if [ -n "${DOCKER_HOST:-}" ]; then
    fail "DOCKER_HOST=$DOCKER_HOST does not answer (docker info failed); start that engine or unset DOCKER_HOST"
fi
[ "$(id -u)" = 0 ] || fail "no Docker engine answers and starting dockerd needs root; start the Docker service"

log=${ATELIER_DOCKERD_LOG:-/var/log/atelier-dockerd.log}
echo "docker-engine: starting dockerd (log: $log)" >&2
# setsid: the engine outlives this script, and no terminal signal reaches it; `stop` ends it.
setsid dockerd > "$log" 2>&1 < /dev/null &
echo $! > "$pidfile"
for _ in $(seq 60); do
    if docker info > /dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
fail "dockerd started but does not answer after 60 s; see the last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
