"""The worker's previews and progress for large prints (issue 12), without running a large job.

Previews are for a screen: at most PREVIEW_MAX_SIDE px JPEGs, while the image kept for the time
limit and the checkpoints stay full size. Progress counts work: the engine's plan of scales as
pixel-steps. The job store and storage are real (the session's redis-server, a local directory).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.jobs import JobStore, new_job_id
from core.storage import LocalStorage, checkpoint_key, preview_key
from spec.options import StyleOptions
from spec.plan import plan_run
from tests.support.images import image_array
from tests.support.scratch import scratch_job_store
from tests.support.stack import RedisServer
from worker.engine import Progress
from worker.tasks import PREVIEW_MAX_SIDE, JobCallbacks, preview_jpeg


def decoded(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[JobStore]:
    yield from scratch_job_store(redis_server, 6)


def test_a_large_preview_is_scaled_down_and_a_small_one_kept() -> None:
    assert PREVIEW_MAX_SIDE == 1024
    assert decoded(preview_jpeg(image_array(3000, 2000))) == ("JPEG", (1024, 683))
    assert decoded(preview_jpeg(image_array(1500, 3000))) == ("JPEG", (512, 1024))
    assert decoded(preview_jpeg(image_array(64, 48))) == ("JPEG", (64, 48))  # never enlarged


def test_previews_are_small_while_checkpoints_and_the_kept_image_stay_full_size(
    store: JobStore, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    job_id = new_job_id()
    store.create(job_id, {"size": 2048, "iterations": 10}, style_count=1)
    callbacks = JobCallbacks(job_id, store, storage, deadline=time.monotonic() + 60)
    image = image_array(2048, 1536)

    callbacks.on_preview(5, image)
    callbacks.on_checkpoint(5, image)

    assert decoded(storage.read_bytes(preview_key(job_id))) == ("JPEG", (1024, 768))
    assert decoded(storage.read_bytes(checkpoint_key(job_id))) == ("PNG", (2048, 1536))
    assert callbacks.latest_image is image  # saved as the partial result if the time limit strikes
    record = store.get(job_id)
    assert record is not None and (record.preview_step, record.checkpoint_step) == (5, 5)


def test_progress_records_the_work_of_coarse_to_fine_scales(store: JobStore, tmp_path: Path) -> None:
    job_id = new_job_id()
    store.create(job_id, {"size": 2048, "iterations": 400}, style_count=1)
    callbacks = JobCallbacks(job_id, store, LocalStorage(tmp_path), deadline=time.monotonic() + 60)
    # A 4000 x 3000 content scaled down to 2048 x 1536.
    callbacks.plan = plan_run(
        (3000, 4000), [(512, 512)], StyleOptions(max_size=2048, iterations=400, scales=(0.25, 0.5, 1))
    )
    # The two coarse scales' 266 steps (two thirds of the steps) are under a quarter of the work.
    assert callbacks.work(266) == pytest.approx((1 + 4) * 133 / ((1 + 4) * 133 + 16 * 134))
    assert callbacks.work(400) == 1.0 and callbacks.work(0) == 0.0

    callbacks.on_progress(Progress(step=266, total=400, loss={"total": 1.0}, elapsed=5.0))
    record = store.get(job_id)
    assert record is not None and record.step == 266
    assert record.work == pytest.approx(callbacks.work(266)) and record.work_before == 0.0

    callbacks.start_step = 133  # a run resumed from the checkpoint at step 133
    callbacks.on_progress(Progress(step=400, total=400, loss={"total": 1.0}, elapsed=9.0))
    record = store.get(job_id)
    assert record is not None and record.work_before == pytest.approx(callbacks.work(133))
