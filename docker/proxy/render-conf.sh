#!/bin/sh
# Prepares an nginx prefix for the proxy: PREFIX/conf/nginx.conf (this directory's, as it is),
# PREFIX/conf/site.conf (atelier.conf.template with the settings below filled in) and PREFIX/temp/.
# Run by start-proxy.sh in the image; tests/deploy/test_proxy.py runs it too, so the test's nginx reads
# the very files the container's does. Settings (environment, with their defaults):
#   ATELIER_PROXY_UPSTREAM        web:8000   the web service
#   ATELIER_PROXY_RESOLVER        127.0.0.11 the DNS server that resolves it (Docker's own, in a container)
#   ATELIER_PROXY_PORT            8080       where nginx listens (unprivileged: above 1024)
#   ATELIER_PROXY_HEADER_TIMEOUT  10s        the whole request header must arrive within this
#   ATELIER_PROXY_BODY_TIMEOUT    15s        the longest pause while a request body arrives
#   ATELIER_PROXY_SEND_TIMEOUT    30s        the longest a client may leave an answer unread
#   ATELIER_MAX_UPLOAD_BYTES      52428800   } the web's settings (core/settings.py): the body limit is
#   ATELIER_MAX_STYLE_IMAGES      4          } (styles + 1) x bytes + 1 MiB, the web's own (app/main.py)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:?usage: render-conf.sh PREFIX}

: "${ATELIER_PROXY_UPSTREAM:=web:8000}"
: "${ATELIER_PROXY_RESOLVER:=127.0.0.11}"
: "${ATELIER_PROXY_PORT:=8080}"
: "${ATELIER_PROXY_HEADER_TIMEOUT:=10s}"
: "${ATELIER_PROXY_BODY_TIMEOUT:=15s}"
: "${ATELIER_PROXY_SEND_TIMEOUT:=30s}"
max_upload_bytes=${ATELIER_MAX_UPLOAD_BYTES:-52428800}
max_style_images=${ATELIER_MAX_STYLE_IMAGES:-4}
ATELIER_PROXY_MAX_BODY_BYTES=$(( (max_style_images + 1) * max_upload_bytes + 1048576 ))
export ATELIER_PROXY_UPSTREAM ATELIER_PROXY_RESOLVER ATELIER_PROXY_PORT ATELIER_PROXY_HEADER_TIMEOUT \
    ATELIER_PROXY_BODY_TIMEOUT ATELIER_PROXY_SEND_TIMEOUT ATELIER_PROXY_MAX_BODY_BYTES

mkdir -p "$prefix/conf" "$prefix/temp"
cp "$here/nginx.conf" "$prefix/conf/nginx.conf"
# Only these names: nginx's own variables ($host, $remote_addr, ...) are left for nginx.
envsubst '${ATELIER_PROXY_UPSTREAM} ${ATELIER_PROXY_RESOLVER} ${ATELIER_PROXY_PORT} ${ATELIER_PROXY_HEADER_TIMEOUT}
${ATELIER_PROXY_BODY_TIMEOUT} ${ATELIER_PROXY_SEND_TIMEOUT} ${ATELIER_PROXY_MAX_BODY_BYTES}' \
    < "$here/atelier.conf.template" > "$prefix/conf/site.conf"
