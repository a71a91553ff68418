"""Fault injection on a running test stack: kill processes, restart Redis, start another worker.

    killed = kill(stack, "redis")         # SIGKILL: no shutdown handlers, no acknowledgements
    start_redis_again(stack, killed)      # same port, data directory and append-only file
    start_worker(stack, "worker-2", old)  # a replacement worker like old, under another hostname

The stack's `processes` are kept current (a killed process is removed, a new one added), so
`stack.wait_for` checks the processes that should be alive and `stack.stop()` stops the new ones.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from tests.support.stack import Process, Stack, spawn


def kill(stack: Stack, name: str) -> Process:
    """SIGKILL the named process (its whole process group) and forget it."""
    process = stack.processes.pop(name)
    os.killpg(process.popen.pid, 9)
    process.popen.wait(timeout=10)
    return process


def rss_bytes(process: Process) -> int:
    """Resident memory of the process (and its children, e.g. prefork pool processes), from /proc."""
    pids = [process.popen.pid, *_children(process.popen.pid)]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def kill_pool_child(process: Process) -> int:
    """SIGKILL the pool process of a prefork worker (what the OOM killer does); returns its pid."""
    children = _children(process.popen.pid)
    assert children, "the worker has no pool process (is it --pool=prefork?)"
    os.kill(children[0], 9)
    return children[0]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in map(int, children):
            found += [child, *_children(child)]
    return found


def start_redis_again(stack: Stack, killed: Process) -> None:
    """Start redis-server again with the arguments of the killed one (same port, data directory and
    append-only file) and wait until it answers."""
    stack.processes["redis"] = spawn(
        "redis-restarted",
        list(killed.popen.args),  # type: ignore[arg-type]
        stack.env,
        killed.log_path.parent,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with Redis.from_url(stack.redis_url) as redis:
                if redis.ping():
                    return
        except RedisError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def start_worker(stack: Stack, name: str, template: Process, pool: str | None = None) -> Process:
    """Start another Celery worker like template (same command) under a new hostname; pool: another
    --pool (e.g. "prefork", as `make run` uses) instead of the template's."""
    args = list(template.popen.args)  # type: ignore[arg-type]
    hostname_at = args.index("--hostname") + 1
    args[hostname_at] = f"{name}-{args[hostname_at]}"
    if pool is not None:
        args = [f"--pool={pool}" if arg.startswith("--pool=") else arg for arg in args]
    stack.processes[name] = spawn(name, args, stack.env, template.log_path.parent)
    return stack.processes[name]
