"""Every setting of Atelier, read once from the environment (prefix ``ATELIER_``) or a ``.env`` file.

This module is shared by the web app, the Celery worker and the command line. It imports
nothing heavier than pydantic, so importing it never drags in FastAPI or TensorFlow.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_", env_file=".env", extra="ignore")

    # --- connections and places -------------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker and job store.")
    storage_dir: Path = Field(DATA_DIR / "storage", description="Local directory shared by web and workers.")
    storage_url: str = Field(
        "",
        description="Where job files live: empty (storage_dir), file:///path (a local directory) or "
        "s3://bucket/prefix (S3-compatible object storage, shared by web and workers on many hosts).",
    )
    s3_endpoint_url: str = Field("", description="S3 API endpoint, e.g. http://minio:9000; empty: AWS S3.")
    s3_region: str = Field("", description="S3 region; empty: from the AWS config or AWS_DEFAULT_REGION.")
    s3_access_key_id: str = Field("", description="Empty: the standard AWS chain (AWS_ACCESS_KEY_ID, ...).")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="Goes with s3_access_key_id.")

    # --- model ----------------------------------------------------------------------------------
    weights: str = Field(
        "imagenet",
        description="VGG19 weights: 'imagenet' (downloaded once into model_dir), a path to a local .h5 "
        "weights file, or 'random' (seeded; tests and offline demos only).",
    )
    model_dir: Path = Field(DATA_DIR / "models", description="Where the ImageNet weights are cached.")
    weights_seed: int = Field(0, description="Seed for weights='random'.")
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = Field(
        "auto",
        description="Convolutions' dtype in the worker and CLI (Gram matrices and losses stay float32); "
        "auto: mixed_bfloat16 on GPUs of compute capability 8.0+, CPUs with AMX and AMD CPUs with "
        "AVX512_BF16, else float32 (docs/performance.md).",
    )
    xla: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Compile the engine's steps with XLA; auto: on with a GPU, off on CPU "
        "(no faster there, more memory).",
    )
    style_library_dir: Path | None = Field(
        None,
        description="A directory of the operator's own paintings and example photos, with its own "
        "library.json manifest (docs/api.md, 'Styles library'); they are added after the built-in ones. "
        "Empty: the built-in library only.",
    )
    max_tile_pixels: int | None = Field(
        None,
        ge=0,
        description="Images of more pixels are optimised by exact tiles of at most this many (the same "
        "picture in bounded memory); 0: never tile; empty: 1048576 (1024²) on CPU, 4194304 on a GPU.",
    )

    style_target_cache_mb: int = Field(
        256,
        ge=0,
        description="Memory (MiB) each worker process keeps the style targets of the paintings it has seen "
        "in (Gram matrices or moments per layer and side, 2.3 MB a painting a rung with the default layers), "
        "least recently used dropped: a later job with the same painting runs no style pass; 0: none.",
    )

    # --- upload limits ---------------------------------------------------------------------------
    # Sized for print content (issue 12): a 4096 px PNG photo is 25-45 MB, a 61 MP camera JPEG 20-30 MB.
    max_upload_bytes: int = Field(
        50 * 1024 * 1024, ge=1024, description="Per uploaded file (50 MiB: a 4096 px PNG photo fits)."
    )
    max_upload_pixels: int = Field(
        64_000_000,
        ge=64,
        description="Decompression-bomb guard, per image (64 MP: a 61 MP camera photo fits).",
    )
    min_image_side: int = Field(16, ge=1, description="Smallest accepted width or height of an upload.")
    max_video_seconds: float = Field(
        10, gt=0, description="Longest video accepted as content, in seconds (docs/video.md)."
    )
    max_video_frames: int = Field(
        240, ge=1, description="Most frames a video job may have after resampling to its fps (docs/video.md)."
    )
    max_style_images: int = Field(4, ge=1, le=16, description="Most style images one job may blend.")
    max_concurrent_decodes: int = Field(
        2, ge=1, description="Uploaded images one web process decodes at once; more wait their turn."
    )
    decode_memory_mb: int = Field(
        512,
        ge=64,
        description="Memory one web process lets its image decodes use at once, by each image's estimate "
        "from its header (a 64 MP upload needs about 300-400 MB, so it decodes alone); one larger than "
        "this decodes alone.",
    )
    decode_wait_seconds: float = Field(
        20, gt=0, description="How long an upload waits for its turn to decode; then 503 with Retry-After."
    )

    # --- job limits ------------------------------------------------------------------------------
    max_size: int = Field(
        1024,
        ge=32,
        description="Largest output side a job may ask for: 1024 suits CPU workers; with GPU workers set "
        "4096 (the Print preset is 2048 px; large sides are evaluated by tiles, docs/engine.md).",
    )
    max_iterations: int = Field(2000, ge=1, description="Most optimisation steps a job may ask for.")
    preview_every: int = Field(10, ge=1, description="Steps between live previews.")
    progress_interval_seconds: float = Field(0.25, gt=0, description="Throttle for progress writes to Redis.")
    event_stream_seconds: float = Field(
        15.0,
        gt=0,
        description="A job page's event stream ends after this and the browser reconnects (so no open page "
        "holds the web's graceful shutdown); shorter than any proxy's idle timeout.",
    )
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=1, description="Keep finished jobs (and files).")
    job_soft_time_limit: int = Field(3600, ge=5, description="Seconds; the partial image is saved.")
    job_hard_time_limit: int = Field(3900, ge=6, description="Seconds; the worker process is killed.")
    broker_visibility_timeout: int = Field(
        4 * 3600,
        ge=7,
        description="Seconds a running job whose worker died may wait to be resumed before the clean-up "
        "fails it as abandoned; must outlast the hard time limit (a dead worker's job is redelivered "
        "after job_lease_seconds).",
    )
    storage_retry_seconds: float = Field(
        600,
        ge=0,
        description="A finished job whose result cannot be stored (a full disk, S3 errors or throttling) "
        "keeps its image and retries, with backoff, for this long before it fails; a job's uploads that "
        "cannot be read for such a reason are retried as long.",
    )
    checkpoint_every: int = Field(
        50, ge=0, description="Steps between checkpoints a redelivered job resumes from; 0: none."
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Deliveries of one job (first run + redeliveries after crashes) before it fails."
    )
    job_lease_seconds: float = Field(
        30,
        gt=0,
        description="A worker's lease on its running job and its queue messages, renewed every third of "
        "it: a dead worker's jobs are resumed elsewhere this long after it died.",
    )
    cleanup_interval_seconds: float = Field(
        60, gt=0, description="How often each worker deletes expired jobs' files."
    )
    queue_name: str = Field("atelier", description="Celery queue the web sends jobs to.")
    large_job_queue: str = Field(
        "", description="Queue for jobs of at least large_job_min_size px (e.g. gpu); empty: one for all."
    )
    large_job_min_size: int = Field(512, ge=32, description="Output side from which a job is large.")
    max_queued_jobs: int = Field(
        100, ge=1, description="Jobs that may wait at once; more get 503 with Retry-After."
    )
    max_batch_jobs: int = Field(
        16,
        ge=1,
        le=256,
        description="Most jobs one batch (POST /api/batches: contents × styles, or its pairs) may make.",
    )
    rate_limit_per_minute: int = Field(
        30, ge=1, description="Job submissions one client IP may make per minute; more get 429."
    )

    # --- webhooks and idempotency (docs/api.md, "Webhooks") ----------------------------------------
    public_base_url: str = Field(
        "",
        description="The address clients reach this service at (https://atelier.example.com), for the "
        "absolute URLs of webhook events; empty: the base URL of the request that submitted the job.",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 key that signs webhook events (header Atelier-Signature); empty: "
        "submissions with a callback_url are refused.",
    )
    webhook_queue: str = Field(
        "atelier-webhooks",
        description="Celery queue of webhook deliveries, consumed by the webhooks worker "
        "(celery -A worker.webhooks worker), never by the style workers.",
    )
    webhook_retry_seconds: float = Field(
        600,
        ge=0,
        description="A delivery that fails (no answer, or not 2xx) is retried with exponential backoff "
        "(1, 2, 4 ... s, at most 120 s apart) for about this long; then it is given up.",
    )
    webhook_timeout_seconds: float = Field(
        5, gt=0, le=60, description="Connect and read timeout of one webhook delivery."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Allow callback URLs that resolve to loopback, private, link-local or reserved "
        "addresses (a receiver inside the network); cloud metadata addresses stay refused.",
    )

    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token GET /metrics (Prometheus) requires; empty: /metrics answers 404.",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Web and worker log level."
    )

    @field_validator("weights")
    @classmethod
    def _weights_known(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("ATELIER_WEIGHTS must be 'imagenet', 'random' or a path to a weights file")
        return value.strip()

    @field_validator("style_library_dir", mode="before")
    @classmethod
    def _empty_library_dir_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("storage_url")
    @classmethod
    def _storage_url_known(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("ATELIER_STORAGE_URL must be empty, file:///path or s3://bucket/prefix")
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/", 1)[0]:
            raise ValueError("ATELIER_STORAGE_URL s3://bucket/prefix needs a bucket name")
        return value

    @model_validator(mode="after")
    def _limits_consistent(self) -> Settings:
        if self.job_hard_time_limit <= self.job_soft_time_limit:
            raise ValueError("ATELIER_JOB_HARD_TIME_LIMIT must be larger than ATELIER_JOB_SOFT_TIME_LIMIT")
        if self.broker_visibility_timeout <= self.job_hard_time_limit:
            raise ValueError(
                "ATELIER_BROKER_VISIBILITY_TIMEOUT must be larger than ATELIER_JOB_HARD_TIME_LIMIT, "
                "or Redis hands a running job to a second worker"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use (tests clear the cache to re-read the env)."""
    return Settings()
