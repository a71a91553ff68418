# syntax=docker/dockerfile:1.7
# Atelier images. Targets (docs/deploy.md):
#   web         FastAPI + uvicorn; no TensorFlow.
#   worker      Celery worker on an NVIDIA GPU: TensorFlow 2.21 with its CUDA/cuDNN wheels; VGG19 weights baked in.
#   worker-cpu  The same worker on tensorflow-cpu, for machines without a GPU.
# Every Python package is pinned by constraints.txt (and docker/constraints-gpu.txt for the CUDA wheels).
# Dependencies install from binary wheels only (--only-binary): no stage needs a compiler, and the final
# stages copy a ready virtualenv.

# ---- base: the one pinned OS + Python every stage starts from; the non-root user ----------------------------
FROM python:3.11.14-slim-bookworm AS base
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

# ---- dependency stages: one virtualenv per image, built from pyproject.toml + pins only ----------------------
FROM base AS deps
COPY pyproject.toml constraints.txt docker/requirements.py /build/
RUN python -m venv /opt/venv

FROM deps AS deps-web
RUN python /build/requirements.py /build/pyproject.toml web > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -r /build/requirements.txt

FROM deps AS deps-worker-cpu
RUN python /build/requirements.py /build/pyproject.toml worker tf-cpu > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -r /build/requirements.txt

FROM deps AS deps-worker-gpu
COPY docker/constraints-gpu.txt /build/
RUN python /build/requirements.py /build/pyproject.toml worker tf-gpu > /build/requirements.txt \
    && pip install --only-binary=:all: -c /build/constraints.txt -c /build/constraints-gpu.txt -r /build/requirements.txt

# ---- web ----------------------------------------------------------------------------------------------------
FROM base AS web
COPY --from=deps-web /opt/venv /opt/venv
COPY core ./core
COPY app ./app
COPY templates ./templates
COPY static ./static
USER atelier
EXPOSE 8000
# uvicorn reads its process count from WEB_CONCURRENCY (default 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]

# ---- weights: fetched once at build time (MD5-checked by the engine), so a worker starts without internet ----
# Only the engine, its CLI and the core settings it reads is copied, so other code changes do not download them again.
FROM deps-worker-cpu AS weights
COPY pyproject.toml README.md /src/
COPY core /src/core
COPY worker/__init__.py /src/worker/__init__.py
COPY worker/cli.py /src/worker/cli.py
COPY worker/engine /src/worker/engine
RUN pip install --no-deps -e /src \
    && atelier fetch-weights --model-dir /models

# ---- worker-cpu -------------------------------------------------------------------------------------------
FROM base AS worker-cpu
COPY --from=deps-worker-cpu /opt/venv /opt/venv
COPY pyproject.toml README.md ./
COPY core ./core
COPY worker ./worker
COPY --chmod=0755 docker/start-worker.sh docker/claim-gpu.sh docker/worker-healthcheck.sh /usr/local/bin/
# Registers the `atelier` command; the code stays in /app (editable install), where PYTHONPATH also points.
RUN pip install --no-deps -e .
COPY --from=weights /models /models
ENV ATELIER_WEIGHTS=imagenet \
    ATELIER_MODEL_DIR=/models \
    TF_CPP_MIN_LOG_LEVEL=1
USER atelier
CMD ["start-worker.sh"]

# ---- worker (GPU): same code and weights, the CUDA build of TensorFlow ----------------------------------------
FROM base AS worker
COPY --from=deps-worker-gpu /opt/venv /opt/venv
COPY pyproject.toml README.md ./
COPY core ./core
COPY worker ./worker
COPY --chmod=0755 docker/start-worker.sh docker/claim-gpu.sh docker/worker-healthcheck.sh /usr/local/bin/
RUN pip install --no-deps -e . \
    && mkdir -p /var/lib/atelier/gpu-locks && chown atelier:atelier /var/lib/atelier/gpu-locks
COPY --from=weights /models /models
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
