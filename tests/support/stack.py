"""A real running Atelier for tests: redis-server, a Celery worker process and uvicorn, on free ports.

    with start_stack(tmp_dir, env={"ATELIER_...": "..."}) as stack:
        response = stack.client.post("/api/jobs", files=...)
        stack.wait_for(job_id, {"succeeded"})

Every process gets the same ATELIER_* environment: random VGG19 weights (no download), storage in
the temporary directory, fast progress writes and small upload limits (see TEST_ENV). Process logs
go to files in the directory; `stack.log_tails()` returns their ends for failure reports.
Nothing here touches the Redis on the default port: the stack's redis-server listens on its own port.
"""

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
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
QUEUE_NAME = "atelier-test"
METRICS_TOKEN = "test-metrics-token"
# One TLS context for every client here: httpx otherwise builds one and loads certifi's CA bundle for
# each Client it makes (~25 ms of CPU), and wait_for and the start-up waits make clients 10-20 times a
# second (the stacks speak plain HTTP: the context is never used, only built).
TLS = httpx.create_ssl_context()

# Settings every test stack runs with (override per stack with start_stack(env=...)).
TEST_ENV = {
    "ATELIER_WEIGHTS": "random",
    "ATELIER_PROGRESS_INTERVAL_SECONDS": "0.05",
    "ATELIER_PREVIEW_EVERY": "5",
    # Job pages' event streams end (and reconnect) this often: tests of the reconnect wait less.
    "ATELIER_EVENT_STREAM_SECONDS": "4",
    "ATELIER_MAX_UPLOAD_BYTES": str(1_000_000),
    "ATELIER_MAX_UPLOAD_PIXELS": str(1_000_000),
    "ATELIER_QUEUE_NAME": QUEUE_NAME,
    # The suite submits far more than a person would from one address; tests/security lowers it.
    "ATELIER_RATE_LIMIT_PER_MINUTE": "100000",
    "ATELIER_LOG_LEVEL": "INFO",
    # GET /metrics answers with it (tests/reliability/test_metrics.py scrapes the default stack).
    "ATELIER_METRICS_TOKEN": METRICS_TOKEN,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """A child process whose output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    terminated: bool = False  # SIGTERM sent

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM (once) if it is still running; stop() then waits for it."""
        if self.popen.poll() is None and not self.terminated:
            self.popen.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after grace_seconds; then SIGKILL whatever is left of its process group.

        The group matters: a prefork Celery worker's pool processes (and anything else the process
        started) outlive a main process that died or was killed first.
        """
        if self.popen.poll() is None:
            self.terminate()  # a second SIGTERM would make Celery's warm shutdown a cold one
            try:
                self.popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        kill_group(self.popen.pid)

    def group_alive(self) -> bool:
        """Some process of its group (it, or a child it started) is still running."""
        return group_alive(self.popen.pid)

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with code {code}:\n{self.tail()}")


# Every process spawn() started in this test session, so the session can check at its end that
# none is left (tests/conftest.py) even when a test forgot to stop one.
SPAWNED: list[Process] = []


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    """Start args as a new session (its own process group, so stop() reaches its children too),
    its output going to log_dir/name.log."""
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    log_file.close()  # the child holds its own descriptor
    process = Process(name, popen, log_path)
    SPAWNED.append(process)
    return process


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in the process group pgid (none left: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """A process of group pgid is still running (zombies, already dead, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state != "Z":
            return True
    return False


@dataclass
class Stack:
    """A started stack. base_url: the web app; redis_url: its Redis (job store and broker).

    Every `client` shares one cookie jar, like one browser: the job-token cookies set by POST
    /api/jobs come back on that job's cancel and delete, so tests act as the submitter. A test of
    somebody else's requests uses its own httpx.Client (no cookies).
    """

    base_url: str
    redis_url: str
    storage_dir: Path
    queue_name: str
    env: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    cookie_jar: CookieJar = field(default_factory=CookieJar)

    @property
    def client(self) -> httpx.Client:
        """An HTTP client for base_url (a new one each time; use it in a with block or let it go)."""
        # httpx uses a CookieJar it is given as is (a Cookies object it would copy).
        return httpx.Client(base_url=self.base_url, timeout=30, cookies=self.cookie_jar, verify=TLS)

    def stranger(self) -> httpx.Client:
        """A client that is not the submitter: its own empty cookie jar (use it in a with block)."""
        return httpx.Client(base_url=self.base_url, timeout=30, verify=TLS)

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url, decode_responses=True)

    def queue_length(self) -> int:
        """Messages waiting in the Celery queue, at every priority (not counting one a worker holds)."""
        from core.routing import broker_lists  # kept local, as cancel_in_store's import

        with self.redis() as redis:
            return sum(int(redis.llen(name)) for name in broker_lists(self.queue_name))

    def stored_files(self) -> set[str]:
        """Every file under the storage directory's jobs/ folder, relative to storage_dir."""
        jobs = self.storage_dir / "jobs"
        if not jobs.exists():
            return set()
        return {str(path.relative_to(self.storage_dir)) for path in jobs.rglob("*") if path.is_file()}

    def submit(self, content: bytes | None, styles: list[bytes], **options: Any) -> httpx.Response:
        """POST /api/jobs with PNG uploads and form options (values are sent as strings)."""
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        if content is not None:
            files.append(("content", ("content.png", content, "image/png")))
        files += [("style", (f"style{index}.png", data, "image/png")) for index, data in enumerate(styles)]
        data = {name: str(value) for name, value in options.items()}
        with self.client as client:
            return client.post("/api/jobs", files=files or None, data=data)

    def status(self, job_id: str, client: httpx.Client | None = None) -> dict[str, Any]:
        """GET /api/jobs/{job_id}; client: one to reuse (a poll loop's: one connection, not one a poll)."""
        if client is None:
            with self.client as client:
                return self.status(job_id, client)
        response = client.get(f"/api/jobs/{job_id}")
        response.raise_for_status()
        return response.json()

    def wait_for(
        self, job_id: str, statuses: set[str], timeout: float = 120, on_poll: Any = None
    ) -> dict[str, Any]:
        """Poll the job until its status is one of statuses; on_poll(status_dict) sees every poll."""
        deadline = time.monotonic() + timeout
        with self.client as client:
            while True:
                current = self.status(job_id, client)
                if on_poll is not None:
                    on_poll(current)
                if current["status"] in statuses:
                    return current
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {current['status']} after {timeout} s: {current}")
                for process in self.processes.values():
                    process.check_alive()
                time.sleep(0.05)

    def busy_job_ids(self) -> list[str]:
        """Jobs queued or running right now (read straight from the job store)."""
        busy = []
        with self.redis() as redis:
            for key in redis.scan_iter(match="atelier:job:*", count=500):
                if key.count(":") == 2 and redis.hget(key, "status") in ("queued", "running"):
                    busy.append(key.rsplit(":", 1)[1])
        return busy

    def cancel_in_store(self, job_id: str) -> None:
        """Cancel straight in the job store, as an operator could: for cleanup of jobs whose token
        this process does not hold (e.g. submitted by a browser)."""
        from core.jobs import JobStore  # app/ is importable from the tests; kept local to this helper

        with self.redis() as redis:
            JobStore(redis, ttl_seconds=3600).request_cancel(job_id)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no job is queued or running (tests that count the queue start from idle)."""
        deadline = time.monotonic() + timeout
        while busy := self.busy_job_ids():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued or running after {timeout} s: {busy}")
            time.sleep(0.1)

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        return {name: process.tail(lines) for name, process in self.processes.items()}

    def stop(self) -> None:
        # The web and the workers (a test may have started more, tests/support/faults.py) side by
        # side: each worker's warm shutdown takes ~1.5 s and needs Redis, which stops last.
        redis = [process for name, process in self.processes.items() if name.startswith("redis")]
        others = [process for name, process in self.processes.items() if not name.startswith("redis")]
        for process in others:
            process.terminate()
        for process in [*others, *redis]:
            process.stop()


def webhooks_worker_args(redis_port: int) -> list[str]:
    """The webhooks worker as scripts/run.sh starts it: threads, its own queue (ATELIER_WEBHOOK_QUEUE)."""
    return [
        str(VENV_BIN / "celery"),
        "-A",
        "worker.webhooks",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "--loglevel=INFO",
        "--hostname",
        f"webhooks-{redis_port}@%h",
        "--without-mingle",
        "--without-gossip",
    ]


def spawn_redis(port: int, data_dir: Path, log_dir: Path, *, persistent: bool = False) -> Process:
    """Start a redis-server on 127.0.0.1:port that keeps nothing on disk unless persistent (then an
    append-only file in data_dir, fsynced on every write, so it survives a SIGKILL and restart)."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is not installed (make system-deps installs it)")
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if persistent else "no",
        "--appendfsync",
        "always",
        "--dir",
        str(data_dir),
        # In-process web configurations and scratch job stores each take a database of their own.
        "--databases",
        "64",
    ]
    return spawn("redis", args, dict(os.environ), log_dir)


@contextlib.contextmanager
def start_redis(base_dir: Path, timeout: float = 30) -> Iterator[tuple[str, Process]]:
    """A redis-server on a free port (nothing on disk): yields (its URL without a database, the
    process); stopped on exit. For tests that need a Redis and nothing else."""
    port = free_port()
    log_dir = base_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = {"redis": spawn_redis(port, base_dir / "redis", log_dir)}
    try:
        _wait("redis-server", lambda: Redis(port=port).ping(), timeout, processes)
        yield f"redis://127.0.0.1:{port}", processes["redis"]
    finally:
        processes["redis"].stop()


@dataclass(frozen=True)
class RedisServer:
    """A redis-server for tests that need only a Redis: base_url is redis://127.0.0.1:PORT."""

    base_url: str
    process: Process

    def url(self, database: int) -> str:
        return f"{self.base_url}/{database}"


def _wait(what: str, check: Any, timeout: float, processes: dict[str, Process]) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for process in processes.values():
            process.check_alive()
        try:
            if check():
                return
        except Exception as error:  # not up yet: keep the last reason for the timeout message
            last_error = error
        time.sleep(0.1)
    tails = "\n".join(f"--- {name} ---\n{process.tail()}" for name, process in processes.items())
    raise TimeoutError(f"{what} not ready after {timeout} s (last error: {last_error})\n{tails}")


@contextlib.contextmanager
def start_stack(
    base_dir: Path,
    env: dict[str, str] | None = None,
    *,
    worker: bool = True,
    timeout: float = 90,
    redis_persistent: bool = False,
    base_environ: dict[str, str] | None = None,
    engine_may_fail: bool = False,
    webhooks: bool = False,
) -> Iterator[Stack]:
    """Start redis-server, (optionally) a Celery worker and uvicorn; stop them all on exit.

    base_dir: an empty directory for storage, models, Redis files and logs. env: extra or
    overriding environment variables for the web app and the worker (e.g. another storage backend).
    redis_persistent: Redis keeps an append-only file (fsync on every write), so a test can kill and
    restart it (tests/support/faults.py) without losing data. base_environ: the environment the
    processes start from (default: os.environ when the stack starts). engine_may_fail: the stack is
    up once its worker is seen, even if /readyz says its engine could not load (a test of that).
    webhooks: also start the webhooks worker (worker/webhooks.py, a thread pool on its own queue).
    """
    storage_dir = base_dir / "storage"
    log_dir = base_dir / "logs"
    for folder in (storage_dir, log_dir, base_dir / "redis", base_dir / "models"):
        folder.mkdir(parents=True, exist_ok=True)
    redis_port, web_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stack_env = {
        **(os.environ if base_environ is None else base_environ),
        "PYTHONUNBUFFERED": "1",
        **TEST_ENV,
        "ATELIER_REDIS_URL": redis_url,
        "ATELIER_STORAGE_DIR": str(storage_dir),
        "ATELIER_MODEL_DIR": str(base_dir / "models"),
        **(env or {}),
    }
    stack = Stack(
        base_url=f"http://127.0.0.1:{web_port}",
        redis_url=stack_env["ATELIER_REDIS_URL"],
        storage_dir=Path(stack_env["ATELIER_STORAGE_DIR"]),
        queue_name=stack_env["ATELIER_QUEUE_NAME"],
        env=stack_env,
    )
    processes = stack.processes
    try:
        processes["redis"] = spawn_redis(redis_port, base_dir / "redis", log_dir, persistent=redis_persistent)
        _wait("redis-server", lambda: Redis(port=redis_port).ping(), timeout, processes)
        if worker:
            processes["worker"] = spawn(
                "worker",
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "worker.celery_app",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    "-Q",
                    stack.queue_name,
                    "--loglevel=INFO",
                    "--hostname",
                    f"test-{redis_port}@%h",
                    "--without-mingle",
                    "--without-gossip",
                ],
                stack_env,
                log_dir,
            )
        if webhooks:
            processes["webhooks"] = spawn("webhooks", webhooks_worker_args(redis_port), stack_env, log_dir)
        processes["web"] = spawn(
            "web",
            [
                str(VENV_BIN / "uvicorn"),
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
                "--log-level",
                "info",
            ],
            stack_env,
            log_dir,
        )

        def ready() -> bool:
            if not worker:  # a web-only stack may be broken on purpose: alive is enough
                return httpx.get(f"{stack.base_url}/healthz", timeout=5, verify=TLS).status_code == 200
            body = httpx.get(f"{stack.base_url}/readyz", timeout=5, verify=TLS).json()
            engine_failed = engine_may_fail and body["engine"].startswith("error:")
            return (body["status"] == "ready" or engine_failed) and body["worker_seen"]

        _wait("the web app (and worker)", ready, timeout, processes)
        yield stack
    finally:
        stack.stop()
