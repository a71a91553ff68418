"""The worker image's scripts, run for real: start-worker.sh with a real Celery worker and Redis,
worker-healthcheck.sh against it, and claim-gpu.sh's one-GPU-per-worker locking."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from tests.support.stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "docker"
VENV_BIN = Path(sys.executable).parent


def script_env(**extra: str) -> dict[str, str]:
    """The environment of a container: the virtualenv first on PATH, the code importable from the repo."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


# --- claim-gpu.sh ------------------------------------------------------------------------------------------


@pytest.fixture
def host_with_two_gpus(tmp_path: Path) -> dict[str, str]:
    """An environment where nvidia-smi lists two GPUs (no GPU here: a stand-in prints what the real one does)
    and the lock directory of docker-compose.multi-gpu.yml is set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho GPU-11111111-aaaa\necho GPU-22222222-bbbb\n")
    fake.chmod(0o755)
    locks = tmp_path / "locks"
    locks.mkdir()
    env = script_env(ATELIER_GPU_LOCK_DIR=str(locks))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def claim(env: dict[str, str], hold_seconds: float) -> subprocess.Popen[str]:
    """Start claim-gpu.sh with a command that prints the GPU it got, then holds it for a while."""
    command = f'echo "gpu=$CUDA_VISIBLE_DEVICES"; sleep {hold_seconds}'
    return subprocess.Popen(
        ["sh", str(SCRIPTS / "claim-gpu.sh"), "sh", "-c", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_all(process: subprocess.Popen[str]) -> None:
    """SIGKILL the command and its children (as when a container dies): the lock goes with the last one."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def inspect_worker(redis_url: str, hostname: str) -> tuple[Any, Any]:
    """The worker node's active queues and stats, as `celery inspect` asks them through the broker
    (from this process: two `celery inspect` processes cost more than the worker's own start)."""
    from celery import Celery

    node = f"celery@{hostname}"
    with Celery(broker=redis_url) as app:
        inspector = app.control.inspect(destination=[node], timeout=5)
        queues, stats = inspector.active_queues(), inspector.stats()
    assert queues and stats, f"{node} did not answer"
    return queues[node], stats[node]


def test_each_worker_claims_its_own_gpu_until_it_exits(host_with_two_gpus: dict[str, str]) -> None:
    first = claim(host_with_two_gpus, 30)
    second = claim(host_with_two_gpus, 30)
    try:
        assert {first_line(first), first_line(second)} == {"gpu=GPU-11111111-aaaa", "gpu=GPU-22222222-bbbb"}

        third = subprocess.run(
            ["sh", str(SCRIPTS / "claim-gpu.sh"), "true"],
            env=host_with_two_gpus,
            capture_output=True,
            text=True,
        )
        assert third.returncode != 0
        assert "all 2 GPUs of this host are taken" in third.stderr

    finally:
        for process in (first, second):
            kill_all(process)


def test_freed_gpu_is_claimed_again(host_with_two_gpus: dict[str, str]) -> None:
    holder = claim(host_with_two_gpus, 30)
    try:
        held = first_line(holder)
        other = claim(host_with_two_gpus, 0)
        got_other = first_line(other)
        other.wait(timeout=10)
        kill_all(holder)  # even SIGKILL frees the GPU: the kernel drops the lock with the processes
        again = claim(host_with_two_gpus, 0)
        got_again = first_line(again)
        again.wait(timeout=10)
    finally:
        kill_all(holder)
    assert got_other != held
    assert got_again == "gpu=GPU-11111111-aaaa"  # the first GPU is free again


def test_without_a_lock_dir_the_command_runs_unchanged(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "sh",
            str(SCRIPTS / "claim-gpu.sh"),
            "sh",
            "-c",
            'echo "[${CUDA_VISIBLE_DEVICES:-unset}] $0"',
            "arg",
        ],
        env=script_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[unset] arg"


# --- start-worker.sh and worker-healthcheck.sh with a real worker ---------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server is not installed (make system-deps installs it)")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                Redis(port=port).ping()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def healthcheck(redis_url: str, hostname: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPTS / "worker-healthcheck.sh")],
        env=script_env(ATELIER_REDIS_URL=redis_url, HOSTNAME=hostname, ATELIER_HEALTHCHECK_TIMEOUT="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_takes_the_queues_it_is_told_and_answers_the_healthcheck(
    redis_url: str, tmp_path: Path
) -> None:
    hostname = socket.gethostname()
    assert healthcheck(redis_url, hostname).returncode != 0, "healthy before any worker runs"
    log_path = tmp_path / "worker.log"
    env = script_env(
        ATELIER_REDIS_URL=redis_url,
        ATELIER_WORKER_QUEUES="gpu,cpu",
        ATELIER_WEIGHTS="random",
        ATELIER_STORAGE_DIR=str(tmp_path / "storage"),
        ATELIER_MODEL_DIR=str(tmp_path / "models"),
    )
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            ["sh", str(SCRIPTS / "start-worker.sh")], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        # Celery says "celery@HOST ready." once it consumes: a healthcheck (a process) before is wasted.
        while " ready." not in log_path.read_text(errors="replace"):
            assert worker.poll() is None, f"worker exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"never ready:\n{log_path.read_text()}"
            time.sleep(0.2)
        while (check := healthcheck(redis_url, hostname)).returncode != 0:
            assert worker.poll() is None, f"worker exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"never healthy: {check.stderr}\n{log_path.read_text()}"
            time.sleep(1)

        queues, stats = inspect_worker(redis_url, hostname)
        assert sorted(queue["name"] for queue in queues) == ["cpu", "gpu"]
        assert stats["pool"]["max-concurrency"] == 1
        assert stats["prefetch_count"] == 1

        assert healthcheck(redis_url, "some-other-container").returncode != 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
