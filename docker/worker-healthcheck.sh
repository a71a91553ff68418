#!/bin/sh
# Healthy when this container's Celery worker answers a ping through the broker. Needs only the broker URL, so
# the check does not import the worker's code (nor TensorFlow). The main process answers even during a job.
set -eu
exec celery --broker "${ATELIER_REDIS_URL:?ATELIER_REDIS_URL is not set}" inspect ping \
    --destination "celery@${HOSTNAME:-$(hostname)}" --timeout "${ATELIER_HEALTHCHECK_TIMEOUT:-10}" > /dev/null
