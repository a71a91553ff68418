#!/usr/bin/env bash
# Installs what `make docker-test` needs and this machine lacks, from Debian's packages: the Docker engine
# (docker.io), debootstrap (base images where Docker Hub cannot be reached) and docker-compose 1.29.
# Nothing happens when all three are there; otherwise one line says what is missing and how to get it.
set -euo pipefail

declare -A package=([dockerd]=docker.io [debootstrap]=debootstrap [docker-compose]=docker-compose)
missing=()
for tool in dockerd debootstrap docker-compose; do
    # debootstrap lives in /usr/sbin, which a non-root PATH may lack.
    command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("${package[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get > /dev/null; then
    echo "docker-install: missing ${missing[*]} and no apt-get here; install Docker, debootstrap and docker-compose" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo > /dev/null || {
        echo "docker-install: missing ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
        exit 1
    }
    sudo="sudo"
fi
echo "docker-install: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > /tmp/docker-install.log 2>&1; then
    echo "docker-install: apt-get could not install ${missing[*]}: $(tail -n 1 /tmp/docker-install.log)" >&2
    exit 1
fi
