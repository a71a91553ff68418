"""One storage test-suite, run against both backends: a local directory and S3 (a real moto server)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.jobs import new_job_id
from core.settings import Settings
from core.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    checkpoint_key,
    content_key,
    preview_key,
    result_key,
    storage_from_settings,
    style_key,
)
from tests.deploy.conftest import S3Server
from tests.support.storage import holds


def s3_storage(server: S3Server, bucket: str, prefix: str = "") -> S3Storage:
    return S3Storage(
        bucket,
        prefix,
        endpoint_url=server.endpoint_url,
        region=server.region,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )


@pytest.fixture(params=["local", "s3"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Storage]:
    """A factory of storages that share one place (a directory, or a bucket and prefix): a second call
    stands for another process (web and worker) reading what the first wrote."""
    if request.param == "local":
        return lambda: LocalStorage(tmp_path / "storage")
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    return lambda: s3_storage(server, bucket, "installs/one")


def test_bytes_written_by_one_process_are_read_by_another(make_storage: Callable[[], Storage]) -> None:
    web, worker = make_storage(), make_storage()
    job_id = new_job_id()
    web.write_bytes(content_key(job_id), b"content-png")
    web.write_bytes(style_key(job_id, 0), b"style-png")

    assert worker.read_bytes(content_key(job_id)) == b"content-png"
    assert worker.read_bytes(style_key(job_id, 0)) == b"style-png"
    assert holds(worker, content_key(job_id))
    assert not holds(worker, result_key(job_id))


def test_overwrite_replaces_the_whole_object(make_storage: Callable[[], Storage]) -> None:
    storage = make_storage()
    job_id = new_job_id()
    storage.write_bytes(preview_key(job_id), b"x" * 10_000)
    storage.write_bytes(preview_key(job_id), b"short")

    assert storage.read_bytes(preview_key(job_id)) == b"short"


def test_large_binary_object_round_trips(make_storage: Callable[[], Storage]) -> None:
    storage = make_storage()
    job_id = new_job_id()
    data = bytes(range(256)) * 20_000  # 5 MB, every byte value

    storage.write_bytes(result_key(job_id), data)

    assert make_storage().read_bytes(result_key(job_id)) == data


def test_missing_object_is_file_not_found(make_storage: Callable[[], Storage]) -> None:
    storage = make_storage()
    job_id = new_job_id()

    with pytest.raises(FileNotFoundError):
        storage.read_bytes(result_key(job_id))
    assert not holds(storage, result_key(job_id))


def test_delete_job_removes_that_job_only(make_storage: Callable[[], Storage]) -> None:
    storage = make_storage()
    doomed, kept = new_job_id(), new_job_id()
    for job_id in (doomed, kept):
        storage.write_bytes(content_key(job_id), b"c")
        storage.write_bytes(style_key(job_id, 0), b"s0")
        storage.write_bytes(style_key(job_id, 1), b"s1")
        storage.write_bytes(result_key(job_id), b"r")

    storage.delete_job(doomed)

    for key in (content_key(doomed), style_key(doomed, 0), style_key(doomed, 1), result_key(doomed)):
        assert not holds(storage, key)
    assert storage.read_bytes(content_key(kept)) == b"c"
    assert storage.read_bytes(result_key(kept)) == b"r"
    storage.delete_job(doomed)  # again, and for a job that never had files: no error
    storage.delete_job(new_job_id())


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "jobs/../../x", "Jobs/UPPER", "", "jobs//x"])
def test_keys_that_could_escape_are_refused(make_storage: Callable[[], Storage], key: str) -> None:
    storage = make_storage()

    with pytest.raises(ValueError):
        storage.write_bytes(key, b"no")
    with pytest.raises(ValueError):
        storage.read_bytes(key)


def test_job_ids_that_are_not_ids_are_refused(make_storage: Callable[[], Storage]) -> None:
    storage = make_storage()

    with pytest.raises(ValueError):
        storage.delete_job("../" + new_job_id())
    with pytest.raises(ValueError):
        storage.delete_job("")


def test_check_writable_passes(make_storage: Callable[[], Storage]) -> None:
    make_storage().check_writable()


def test_move_puts_the_object_under_the_new_key_and_removes_the_old(
    make_storage: Callable[[], Storage],
) -> None:
    storage = make_storage()
    job_id = new_job_id()
    storage.write_bytes(checkpoint_key(job_id), b"finished image")
    storage.write_bytes(result_key(job_id), b"old result")

    storage.move(checkpoint_key(job_id), result_key(job_id))

    assert make_storage().read_bytes(result_key(job_id)) == b"finished image"
    assert not holds(storage, checkpoint_key(job_id))
    with pytest.raises(FileNotFoundError):
        storage.move(checkpoint_key(job_id), result_key(job_id))


# --- S3 only ---------------------------------------------------------------------------------------------


def test_objects_live_under_the_prefix_so_installations_share_a_bucket(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    blue, green = s3_storage(s3_server, bucket, "blue"), s3_storage(s3_server, bucket, "green/")
    job_id = new_job_id()
    blue.write_bytes(result_key(job_id), b"blue result")

    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"blue/jobs/{job_id}/result.png"]
    assert not holds(green, result_key(job_id))
    green.delete_job(job_id)
    assert blue.read_bytes(result_key(job_id)) == b"blue result"


def test_delete_job_removes_more_objects_than_one_request_takes(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    storage = s3_storage(s3_server, bucket)
    job_id = new_job_id()
    client = s3_server.client()
    keys = [f"jobs/{job_id}/frame-{index}.jpg" for index in range(1005)]  # DeleteObjects takes 1000 at most
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"."), keys))

    storage.delete_job(job_id)

    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_missing_bucket_fails_loudly_not_as_a_missing_file(s3_server: S3Server) -> None:
    storage = s3_storage(s3_server, "atelier-no-such-bucket")

    with pytest.raises(StorageError, match="NoSuchBucket") as refused:
        storage.check_writable()
    assert refused.value.reason == "S3 answered 404 NoSuchBucket" and not refused.value.transient
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.read_bytes(result_key(new_job_id()))


def test_half_the_credentials_is_an_error_not_another_identity(s3_server: S3Server) -> None:
    # An access key id without its secret must not fall back to whatever credentials the host has.
    with pytest.raises(Exception, match="(?i)credentials.*secret"):
        S3Storage(
            s3_server.new_bucket(),
            endpoint_url=s3_server.endpoint_url,
            region=s3_server.region,
            access_key_id="only-the-id",
            secret_access_key="",
        )


# --- choosing the backend from settings --------------------------------------------------------------------


def test_settings_choose_local_directory_by_default(tmp_path: Path) -> None:
    storage = storage_from_settings(Settings(storage_dir=tmp_path / "here", storage_url=""))

    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "here").resolve()


def test_settings_choose_a_file_url(tmp_path: Path) -> None:
    storage = storage_from_settings(
        Settings(storage_dir=tmp_path / "unused", storage_url=f"file://{tmp_path}/x")
    )

    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "x").resolve()


def test_settings_choose_s3_with_bucket_prefix_and_endpoint(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    settings = Settings(
        storage_url=f"s3://{bucket}/team/atelier",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_region=s3_server.region,
        s3_access_key_id=s3_server.access_key_id,
        s3_secret_access_key=s3_server.secret_access_key,
    )
    storage = storage_from_settings(settings)
    job_id = new_job_id()
    storage.write_bytes(content_key(job_id), b"via settings")

    assert isinstance(storage, S3Storage)
    got = s3_server.client().get_object(Bucket=bucket, Key=f"team/atelier/jobs/{job_id}/content.png")
    assert got["Body"].read() == b"via settings"


@pytest.mark.parametrize("url", ["http://bucket/x", "s3://", "s3:///prefix", "/data/storage"])
def test_settings_refuse_unknown_storage_urls(url: str) -> None:
    with pytest.raises(ValueError, match="ATELIER_STORAGE_URL"):
        Settings(storage_url=url)
