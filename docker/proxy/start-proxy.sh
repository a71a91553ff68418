#!/bin/sh
# The proxy image's command: render the site for this container's settings, then nginx in the foreground
# (its master and workers run as the image's user; -e: no log file opened before the configuration's own).
set -eu
prefix=/var/lib/atelier-proxy
/etc/atelier-proxy/render-conf.sh "$prefix"
nginx -t -q -p "$prefix/" -c "$prefix/conf/nginx.conf" -e stderr
exec nginx -p "$prefix/" -c "$prefix/conf/nginx.conf" -e stderr -g 'daemon off;'
