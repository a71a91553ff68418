# A stand-in for the pinned redis:7.4.6 image, built from Debian's redis-server (7.0) where Docker Hub cannot
# be reached (scripts/docker-base-images.sh). Like the official image: data in /data, a non-root user.
ARG DEBIAN_IMAGE=atelier-base/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# The official image compiles protected mode off: a container is reached through its network, not loopback.
CMD ["redis-server", "--protected-mode", "no"]
