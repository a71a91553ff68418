"""LocalStorage: atomic writes, job keys only from valid ids, nothing outside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage import LocalStorage, check_key, content_key, preview_key, result_key, style_key
from tests.support.storage import holds

JOB = "0123456789abcdef0123456789abcdef"


def test_write_read_exists_and_delete_job(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes(content_key(JOB), b"content")
    storage.write_bytes(style_key(JOB, 1), b"style")

    assert storage.read_bytes(content_key(JOB)) == b"content"
    assert holds(storage, style_key(JOB, 1)) and not holds(storage, result_key(JOB))
    assert sorted(p.name for p in (tmp_path / "jobs" / JOB).iterdir()) == ["content.png", "style-1.png"]

    storage.delete_job(JOB)
    assert not (tmp_path / "jobs" / JOB).exists()
    storage.delete_job(JOB)  # idempotent
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(content_key(JOB))


def test_overwrite_leaves_no_temporary_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for version in range(3):
        storage.write_bytes(preview_key(JOB), f"preview {version}".encode())
    assert storage.read_bytes(preview_key(JOB)) == b"preview 2"
    assert [p.name for p in (tmp_path / "jobs" / JOB).iterdir()] == ["preview.jpg"]


@pytest.mark.parametrize(
    "bad_id", ["", "../../etc", "0123456789ABCDEF0123456789ABCDEF", JOB + "/..", JOB[:-1]]
)
def test_keys_refuse_anything_but_a_job_id(bad_id: str) -> None:
    for make_key in (content_key, preview_key, result_key):
        with pytest.raises(ValueError):
            make_key(bad_id)


@pytest.mark.parametrize(
    "key", ["../x", "/etc/passwd", "jobs/../../x", "jobs//x", "Jobs/x", "jobs/x/", "a\\b", ""]
)
def test_malformed_keys_never_reach_the_filesystem(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        storage.write_bytes(key, b"x")
    assert not any(tmp_path.rglob("x"))


def test_check_writable_fails_when_the_root_is_not_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(OSError):
        LocalStorage(blocker).check_writable()
    LocalStorage(tmp_path / "fine").check_writable()
