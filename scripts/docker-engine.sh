#!/usr/bin/env bash
# Makes sure a Docker engine answers: the one the docker CLI already reaches (DOCKER_HOST or the default
# socket), else a dockerd started here in the background (as root; it is left running for later runs, which
# then find Docker's layer cache warm). A broken environment ends with one line naming what is missing.
set -euo pipefail

fail() {
    echo "docker-engine: $*" >&2
    exit 1
}

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
# setsid: the engine outlives this script and the test run, and no terminal signal reaches it.
setsid dockerd > "$log" 2>&1 < /dev/null &
for _ in $(seq 60); do
    if docker info > /dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
fail "dockerd started but does not answer after 60 s; see the last lines of $log: $(tail -n 3 "$log" | tr '\n' ' ')"
