"""Fixtures shared by the whole suite.

stack          a running Atelier (redis-server + Celery worker + uvicorn) for the whole session;
               see tests/support/stack.py for what it offers (base_url, client, submit, wait_for,
               queue_length, stored_files, redis_url, storage_dir).
stack_factory  start_stack(name, env, worker=True, **options) -> another running stack with extra
               environment (e.g. S3 storage) or start_stack options (redis_persistent=True); each
               distinct name starts once per session and stops at the end.
               stack_factory.in_background(name, ...) begins a start without waiting for it.
redis_server   a redis-server of the session's own (nothing on disk): redis_server.url(db) is the
               URL of database db; tests of the job store use it and nothing else.
web_factory    web_factory(name, env) -> an InProcessWeb (tests/support/inprocess.py): the web app
               in this process (FastAPI's TestClient), on a Redis database of its own of
               redis_server, with extra ATELIER_* settings; no worker, so jobs stay queued. Each
               distinct name is created once per session.
web            web_factory("default"): web-only tests use it (milliseconds, no processes).
web_process    a real uvicorn and Redis with no worker, for tests of how the server process itself
               handles a request.
When a test fails, the last lines of every running stack's process logs are added to its report.

Only tests where a process is the point start processes (a worker running jobs, a crash, a Redis
restart, the browser, uvicorn's own handling of a request): the `stack` fixtures. At the end of the
session the suite fails if any process it started is still alive (see pytest_sessionfinish).
Modules that use real processes run after the others (pytest_collection_modifyitems), so the
default stack starts in the background while the in-process and engine tests run. Their tests are
marked `processes`: `make test-fast` (pytest -m "not processes") runs the rest alone.

Under `pytest -n N` each TensorFlow (this process's, and every worker or CLI it starts: they copy
os.environ) gets the cores divided by N as its thread pools, not all of them (docs/testing.md).

The session stack has ONE solo worker shared by every test: a test must not leave a job queued or
running (cancel long jobs it started; an autouse fixture cancels leftovers after each test that
uses `stack`); tests that count the queue call stack.wait_idle() first.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import InProcessWeb, restore_environment
from tests.support.stack import SPAWNED, RedisServer, Stack, kill_group, start_redis, start_stack

_running: list[Stack] = []


def _share_the_cores_between_test_processes() -> None:
    """Under xdist, N test processes (and the TensorFlow processes they start) share the machine:
    TensorFlow's default pools (a thread per core each, spinning while they wait) oversubscribe it."""
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if processes < 2:
        return  # serial: one TensorFlow at a time may use every core
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share = str(max(1, cores // processes))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", share)  # read when TensorFlow starts, not later
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", share)


_share_the_cores_between_test_processes()


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    stacks: dict[str, Stack] = {}
    startups: dict[str, Future[Stack]] = {}
    begun: list[tuple[Future[Stack], contextlib.AbstractContextManager[Stack]]] = []
    with contextlib.ExitStack() as exits, ThreadPoolExecutor(1, thread_name_prefix="stack") as pool:
        exits.callback(_stop_side_by_side, begun)

        def begin(name: str, env: dict[str, str] | None, worker: bool, options: dict[str, Any]) -> None:
            # The stack's processes copy this environment: never the settings of a live in-process
            # web (it becomes live again on its next request).
            restore_environment()
            manager = start_stack(
                tmp_path_factory.mktemp(f"stack-{name}"),
                env,
                worker=worker,
                base_environ=dict(os.environ),
                **options,
            )
            startups[name] = pool.submit(manager.__enter__)
            begun.append((startups[name], manager))

        def start(
            name: str, env: dict[str, str] | None = None, *, worker: bool = True, **options: Any
        ) -> Stack:
            if name not in stacks:
                if name not in startups:
                    begin(name, env, worker, options)
                stacks[name] = startups[name].result()
                _running.append(stacks[name])
            return stacks[name]

        def start_in_background(
            name: str, env: dict[str, str] | None = None, *, worker: bool = True, **options: Any
        ) -> None:
            """Begin starting the stack now; start(name) later waits for it (tests run meanwhile)."""
            if name not in startups:
                begin(name, env, worker, options)

        start.in_background = start_in_background  # type: ignore[attr-defined]
        yield start
        _running.clear()


def _stop_side_by_side(begun: list[tuple[Future[Stack], contextlib.AbstractContextManager[Stack]]]) -> None:
    """Stop every stack at once: each takes ~1.5 s (its worker's warm shutdown), and a process of the
    suite may hold several, so one after the other made the session's end ~12 s."""
    with ThreadPoolExecutor(max(1, len(begun)), thread_name_prefix="stop") as stoppers:
        for stopped in [stoppers.submit(_stop_when_started, *pair) for pair in begun]:
            stopped.result()


def _stop_when_started(startup: Future[Stack], manager: contextlib.AbstractContextManager[Stack]) -> None:
    try:
        startup.result()  # one started in the background and never used comes up first
    except Exception:
        return  # a stack that failed to start has stopped its processes itself
    manager.__exit__(None, None, None)


# Fixtures that start real processes (a stack, a browser, an S3 server): their tests are marked
# `processes` (`make test-fast` leaves them out) and their modules run after the in-process ones.
PROCESS_FIXTURES = frozenset({"stack", "stack_factory", "web_process", "playwright", "browser", "s3_server"})
# Modules that start such processes themselves: a Celery worker through the image's scripts (~18 s).
# tests/worker/test_cli.py marks itself; tests/deploy/test_compose.py's `compose config` runs stay fast.
PROCESS_MODULES = frozenset({"tests/deploy/test_worker_scripts.py"})
_default_stack_wanted = False


def starts_processes(item: pytest.Item) -> bool:
    """The test starts real processes: through a fixture, in its module, or marked by hand."""
    return bool(
        PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))
        or item.nodeid.split("::")[0] in PROCESS_MODULES
        or item.get_closest_marker("processes")
        or item.get_closest_marker("docker")
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Mark the tests that start processes (`pytest -m "not processes"` is the fast tier), and run
    their modules last (stable order otherwise), so the default stack can start in the background
    while the in-process and engine tests run (_start_default_stack)."""
    with_processes = set()
    for item in items:
        if starts_processes(item):
            item.add_marker(pytest.mark.processes)
            with_processes.add(item.nodeid.split("::")[0])
    items.sort(key=lambda item: item.nodeid.split("::")[0] in with_processes)


def pytest_collection_finish(session: pytest.Session) -> None:
    global _default_stack_wanted
    # After -k, -m and --deselect: start the default stack only if a test that will run uses it.
    _default_stack_wanted = any("stack" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def _start_default_stack(request: pytest.FixtureRequest) -> None:
    # Looked up, not a parameter: every test would count as one that starts processes.
    if _default_stack_wanted:
        request.getfixturevalue("stack_factory").in_background("default")


@pytest.fixture(scope="session")
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    """The default stack: local storage, random weights, one solo worker."""
    return stack_factory("default")


MISSING_WEIGHTS_FILE = "/nonexistent/vgg19_weights.h5"


@pytest.fixture(scope="session")
def offline_stack(stack_factory: Callable[..., Stack]) -> Stack:
    """A stack whose worker has no weights file, as an offline server without ImageNet's: it is up
    once its worker is seen, though /readyz says its engine could not load."""
    return stack_factory("missing-weights", {"ATELIER_WEIGHTS": MISSING_WEIGHTS_FILE}, engine_may_fail=True)


# Databases of redis_server: 1-15 for scratch job stores (tests pick theirs), 16 on for web_factory.
_web_databases = itertools.count(16)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with start_redis(tmp_path_factory.mktemp("redis")) as (base_url, process):
        yield RedisServer(base_url, process)


@pytest.fixture(scope="session")
def web_factory(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., InProcessWeb]]:
    webs: dict[str, InProcessWeb] = {}

    def create(name: str, env: dict[str, str] | None = None) -> InProcessWeb:
        if name not in webs:
            base_dir = tmp_path_factory.mktemp(f"web-{name}")
            env = {"ATELIER_REDIS_URL": redis_server.url(next(_web_databases)), **(env or {})}
            webs[name] = InProcessWeb.create(base_dir, env["ATELIER_REDIS_URL"], env)
        return webs[name]

    yield create
    restore_environment()


@pytest.fixture(scope="session")
def web_process(stack_factory: Callable[..., Stack]) -> Stack:
    """Real redis-server + uvicorn, no worker: for the few web tests where uvicorn's own handling of
    a request is the point (a body streamed without Content-Length, a 100 MB upload cut off, the
    schema fuzzing); its queue cap is out of reach, so generated submissions never fill it."""
    return stack_factory("web-only", {"ATELIER_MAX_QUEUED_JOBS": "100000"}, worker=False)


@pytest.fixture(scope="session")
def web(web_factory: Callable[..., InProcessWeb]) -> InProcessWeb:
    """The default in-process web app: local storage, no worker."""
    return web_factory("default")


@pytest.fixture(autouse=True)
def _restore_environment_after_in_process_web() -> Iterator[None]:
    """An in-process web sets ATELIER_* variables in os.environ while it serves: put them back after
    each test, so a stack started later (it copies os.environ) never inherits them."""
    yield
    restore_environment()


@pytest.fixture(autouse=True)
def _cancel_jobs_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the shared stack, cancel whatever it left queued or running (a failed test
    often does), so the next test starts with an idle worker instead of failing in turn."""
    yield
    if "stack" not in request.fixturenames:
        return
    shared: Stack = request.getfixturevalue("stack")
    leftovers = shared.busy_job_ids()
    if leftovers:
        for job_id in leftovers:  # not through the API: a browser-submitted job's token is not ours
            shared.cancel_in_store(job_id)
        shared.wait_idle(timeout=30)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for index, running in enumerate(_running):
            for name, tail in running.log_tails().items():
                report.sections.append((f"stack {index} {name} log (tail)", tail))


# --- no process outlives the session -------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36
# Shared by design, not per test: the Docker engine the docker tests may start and leave running.
MAY_OUTLIVE = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"}


def pytest_sessionstart(session: pytest.Session) -> None:
    # As a subreaper, this process inherits every orphaned descendant (a daemonised grandchild, a pool
    # process whose worker died), so pytest_sessionfinish finds them all among its own descendants.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _descendants(pid: int) -> list[int]:
    """Every descendant of pid, except below a process that may outlive the session (MAY_OUTLIVE)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            described = _describe(child)
            if described is not None and described[1] in MAY_OUTLIVE:
                continue  # the Docker engine and what it runs are not the session's to stop
            found += [child, *_descendants(child)]
    return found


def _describe(pid: int) -> tuple[str, str, str] | None:
    """(state, name, command line) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return stat[stat.rindex(")") + 2], name, command.strip()


def _leftover_processes() -> dict[int, str]:
    """Processes this session started that are still running: {pid: what}. Zombies are reaped."""
    left: dict[int, str] = {}
    for pid in _descendants(os.getpid()):
        described = _describe(pid)
        if described is None:
            continue
        state, name, command = described
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            continue
        left[pid] = command or name
    return left


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a process it started is still alive (then kill it, so none lingers)."""
    deadline = time.monotonic() + 5  # a process stopped just now may still be exiting
    while (left := _leftover_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {command[:200]}" for pid, command in sorted(left.items())]
    message = "processes started by the tests were still running at the end:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_sep("=", "leftover processes", red=True)
        reporter.write_line(message)
    for process in SPAWNED:
        kill_group(process.popen.pid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    _leftover_processes()  # reaps the ones just killed (this process is their subreaper)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
