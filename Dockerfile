# Atelier images. Targets (docs/deploy.md, "Containers"):
#   web         FastAPI + uvicorn; no TensorFlow.
#   worker-cpu  The Celery worker on tensorflow-cpu, for machines without a GPU.
#   worker      The Celery worker on an NVIDIA GPU: TensorFlow 2.21 with its CUDA/cuDNN wheels.
# Every Python package is pinned by constraints.txt (and docker/constraints-gpu.txt for the CUDA wheels) and
# installs from binary wheels only (--only-binary): no stage needs a compiler; the final stages copy a ready
# virtualenv.
#
# Builds with BuildKit and with the legacy builder (no `# syntax=` line, no RUN --mount, no COPY --chmod). The
# legacy builder builds every stage that comes before the target, so the stages are in the order of the
# targets: building `web` never reaches a TensorFlow stage, and only `worker` reaches the CUDA stage.
#
# Build arguments (docs/deploy.md, "Air-gapped and proxied builds"):
#   PYTHON_IMAGE  the base image: the pinned default below, or a mirror's copy, or the stand-in that
#                 scripts/docker-base-images.sh builds from Debian's packages.
#   WEIGHTS       download (default): the ImageNet weights are fetched at build time and baked into the workers;
#                 file: docker/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 from the build context;
#                 none: no weights, the worker starts and jobs fail with the engine's message naming the file.
# Extra CA certificates (networks that inspect TLS): every docker/ca-certificates/*.crt is trusted by pip and the
# weights download, in the dependency stages only; no final image contains them.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- base: the one OS + Python every stage starts from; the non-root user -------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    ATELIER_STORAGE_DIR=/data/storage
# The storage directory belongs to the service user: a new named volume mounted there inherits the owner.
RUN groupadd --system --gid 10001 atelier \
    && useradd --system --uid 10001 --gid atelier --create-home --home-dir /home/atelier --shell /usr/sbin/nologin atelier \
    && mkdir -p /data/storage \
    && chown -R atelier:atelier /data
WORKDIR /app

# ---- deps: an empty virtualenv, the requirement lists and the trusted certificates for the downloads ----------
FROM base AS deps
COPY pyproject.toml constraints.txt docker/requirements.py docker/trim-venv.sh /build/
COPY docker/ca-certificates/ /build/ca-certificates/
# The system's bundle plus the extra certificates, for pip and Python's ssl (PIP_CERT, SSL_CERT_FILE).
RUN cat /etc/ssl/certs/ca-certificates.crt /build/ca-certificates/*.crt > /build/ca-bundle.crt 2> /dev/null \
        || cp /etc/ssl/certs/ca-certificates.crt /build/ca-bundle.crt \
    && python -m venv /opt/venv
ENV PIP_CERT=/build/ca-bundle.crt \
    SSL_CERT_FILE=/build/ca-bundle.crt

# ---- web ------------------------------------------------------------------------------------------------------
# pip and setuptools leave the virtualenv once it is complete: no final image installs anything at run time.
FROM deps AS deps-web
RUN python /build/requirements.py /build/pyproject.toml web > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -r /build/requirements.txt \
    && python /build/requirements.py --scripts /opt/venv/bin /build/pyproject.toml atelier-cleanup \
    && pip uninstall --yes --quiet pip setuptools

FROM base AS web
COPY --from=deps-web /opt/venv /opt/venv
COPY core ./core
COPY app ./app
COPY templates ./templates
COPY static ./static
# The style library (paintings, example photos, manifest, PROVENANCE.md, SHA256SUMS): ~3 MB; the
# thumbnails are made from it in memory when the web starts.
COPY library ./library
# The run's specification (the option schema, the run plan, the pixel conversion: standard library and
# Pillow), shared with the worker.
COPY spec ./spec
# The webhooks worker (compose's `webhooks` service) runs from this image too: it loads no TensorFlow.
COPY worker/__init__.py worker/webhooks.py ./worker/
USER atelier
EXPOSE 8000
# uvicorn reads its process count from WEB_CONCURRENCY (default 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]

# ---- worker-cpu -----------------------------------------------------------------------------------------------
FROM deps AS deps-worker-cpu
RUN python /build/requirements.py /build/pyproject.toml worker tf-cpu > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -r /build/requirements.txt \
    && python /build/requirements.py --scripts /opt/venv/bin /build/pyproject.toml atelier atelier-cleanup \
    && sh /build/trim-venv.sh

# The weights (see WEIGHTS above), verified by the engine's MD5 check. Only the code the `atelier` CLI needs is
# copied, so other code changes do not fetch them again.
FROM deps-worker-cpu AS weights
ARG WEIGHTS=download
COPY docker/weights/ /build/weights/
COPY spec /src/spec
COPY core /src/core
COPY worker/__init__.py worker/cli.py /src/worker/
COPY worker/engine /src/worker/engine
RUN set -e; mkdir -p /models; \
    case "$WEIGHTS" in \
      download) PYTHONPATH=/src atelier fetch-weights --model-dir /models ;; \
      file) cp /build/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 /models/ \
            && PYTHONPATH=/src atelier fetch-weights --model-dir /models ;; \
      none) echo "WEIGHTS=none: no ImageNet weights in this image" ;; \
      *) echo "WEIGHTS must be download, file or none, not '$WEIGHTS'" >&2; exit 2 ;; \
    esac

FROM base AS worker-cpu
COPY --from=deps-worker-cpu /opt/venv /opt/venv
COPY docker/start-worker.sh docker/claim-gpu.sh docker/worker-healthcheck.sh /usr/local/bin/
COPY --from=weights /models /models
COPY spec ./spec
COPY core ./core
COPY worker ./worker
# For `atelier styles` and `atelier stylize --style-id` (jobs get their styles from storage, not from here).
COPY library ./library
ENV ATELIER_WEIGHTS=imagenet \
    ATELIER_MODEL_DIR=/models \
    TF_CPP_MIN_LOG_LEVEL=1
USER atelier
CMD ["start-worker.sh"]

# ---- worker (GPU): the same code and weights, the CUDA build of TensorFlow (last: only this target reaches it) --
FROM deps AS deps-worker-gpu
COPY docker/constraints-gpu.txt /build/
RUN python /build/requirements.py /build/pyproject.toml worker tf-gpu > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -c /build/constraints-gpu.txt -r /build/requirements.txt \
    && python /build/requirements.py --scripts /opt/venv/bin /build/pyproject.toml atelier atelier-cleanup \
    && sh /build/trim-venv.sh

FROM base AS worker
COPY --from=deps-worker-gpu /opt/venv /opt/venv
COPY docker/start-worker.sh docker/claim-gpu.sh docker/worker-healthcheck.sh /usr/local/bin/
RUN mkdir -p /var/lib/atelier/gpu-locks && chown atelier:atelier /var/lib/atelier/gpu-locks
COPY --from=weights /models /models
COPY spec ./spec
COPY core ./core
COPY worker ./worker
# For `atelier styles` and `atelier stylize --style-id` (jobs get their styles from storage, not from here).
COPY library ./library
# The host's driver is mounted by the NVIDIA Container Toolkit; CUDA and cuDNN come with the TensorFlow wheels.
# Memory growth: TensorFlow takes GPU memory as jobs need it instead of all of it at start.
ENV ATELIER_WEIGHTS=imagenet \
    ATELIER_MODEL_DIR=/models \
    TF_CPP_MIN_LOG_LEVEL=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    CUDA_DEVICE_ORDER=PCI_BUS_ID \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER atelier
ENTRYPOINT ["claim-gpu.sh"]
CMD ["start-worker.sh"]
