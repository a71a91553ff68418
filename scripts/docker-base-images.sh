#!/usr/bin/env bash
# Makes the two base images of Atelier available to the Docker engine and prints their names:
#   ATELIER_PYTHON_IMAGE=...   (FROM of every Atelier image; Dockerfile build argument PYTHON_IMAGE)
#   ATELIER_REDIS_IMAGE=...    (the compose file's redis service)
# For each, in order: the image named by that variable (or the pinned default) if the engine has it or can pull
# it; else, only for the pinned defaults, a stand-in built from Debian's packages: a minimal Debian made with
# debootstrap and `docker import`, then docker/base/python.Dockerfile or docker/base/redis.Dockerfile on it.
# Sites that cannot reach Docker Hub nor a Debian mirror set the two variables to images of their own registry.
# Logs go to stderr; stdout carries only the two lines above. Needs a running engine (scripts/docker-engine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_PYTHON_IMAGE=python:3.11.14-slim-bookworm
DEFAULT_REDIS_IMAGE=redis:7.4.6
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
LOCAL_DEBIAN_IMAGE=atelier-base/debian:$DEBIAN_SUITE
LOCAL_PYTHON_IMAGE=atelier-base/python:3.11-$DEBIAN_SUITE
LOCAL_REDIS_IMAGE=atelier-base/redis:7.0-$DEBIAN_SUITE

log() { echo "docker-base-images: $*" >&2; }
fail() {
    echo "docker-base-images: $*" >&2
    exit 1
}

have_image() { docker image inspect "$1" > /dev/null 2>&1; }

# An image the engine has or can pull; a registry that cannot be reached fails fast (DNS) or within 2 min.
available() {
    have_image "$1" && return 0
    log "pulling $1"
    timeout 120 docker pull --quiet "$1" > /dev/null 2>&1
}

debian_image() {
    have_image "$LOCAL_DEBIAN_IMAGE" && return 0
    command -v debootstrap > /dev/null \
        || fail "cannot pull the base images and debootstrap is missing to build them; apt-get install debootstrap"
    [ "$(id -u)" = 0 ] || fail "building a Debian base with debootstrap needs root (or set ATELIER_PYTHON_IMAGE)"
    rootfs=$(mktemp -d /tmp/atelier-debootstrap.XXXXXX)
    # The root file system is removed however the script ends.
    trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
    log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (about 30 s)"
    if ! debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" > "$rootfs.log" 2>&1; then
        local reason
        reason=$(grep -E '^(E|W):' "$rootfs.log" | tail -n 1)
        fail "debootstrap could not fetch Debian's base packages from $DEBIAN_MIRROR (${reason:-see debootstrap}); set DEBIAN_MIRROR to a reachable mirror, or ATELIER_PYTHON_IMAGE and ATELIER_REDIS_IMAGE to images you have"
    fi
    cat > "$rootfs/etc/apt/sources.list" << SOURCES
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main
SOURCES
    # As Docker's own debian images: no documentation, manual pages or translations, now or from later installs.
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" << 'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EXCLUDES
    # ... and no downloaded packages nor apt's caches left in a layer (Docker's debian images do the same).
    cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" << 'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    log "importing the root file system as $LOCAL_DEBIAN_IMAGE"
    tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$LOCAL_DEBIAN_IMAGE" > /dev/null
}

# Builds a stand-in from docker/base/NAME.Dockerfile on the local Debian image.
stand_in() {
    local name=$1 tag=$2
    have_image "$tag" && return 0
    debian_image
    log "building $tag from Debian's packages"
    if ! docker build --quiet --build-arg "DEBIAN_IMAGE=$LOCAL_DEBIAN_IMAGE" -t "$tag" \
        -f "docker/base/$name.Dockerfile" docker/base > /dev/null; then
        fail "building $tag failed: the container could not install Debian's packages from $DEBIAN_MIRROR (see above); set DEBIAN_MIRROR, or ATELIER_PYTHON_IMAGE and ATELIER_REDIS_IMAGE"
    fi
}

resolve() {
    local variable=$1 default=$2 name=$3 local_tag=$4
    local image=${!variable:-}
    if [ -n "$image" ] && [ "$image" != "$default" ]; then
        available "$image" || fail "$variable=$image: the engine has no such image and cannot pull it"
        echo "$image"
    elif available "$default"; then
        echo "$default"
    else
        log "$default cannot be pulled (no Docker Hub here?): using a stand-in built from Debian's packages"
        stand_in "$name" "$local_tag"
        echo "$local_tag"
    fi
}

docker info > /dev/null 2>&1 || fail "no Docker engine answers; run scripts/docker-engine.sh (or start Docker)"
python_image=$(resolve ATELIER_PYTHON_IMAGE "$DEFAULT_PYTHON_IMAGE" python "$LOCAL_PYTHON_IMAGE")
redis_image=$(resolve ATELIER_REDIS_IMAGE "$DEFAULT_REDIS_IMAGE" redis "$LOCAL_REDIS_IMAGE")
echo "ATELIER_PYTHON_IMAGE=$python_image"
echo "ATELIER_REDIS_IMAGE=$redis_image"
