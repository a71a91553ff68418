# A stand-in for the pinned python:3.11.14-slim-bookworm, built from Debian's own packages (Python 3.11.2)
# where Docker Hub cannot be reached: scripts/docker-base-images.sh builds it FROM a debootstrapped Debian.
# What the Atelier Dockerfile needs of its base: python and `python -m venv`, CA certificates, useradd.
ARG DEBIAN_IMAGE=atelier-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
CMD ["python3"]
