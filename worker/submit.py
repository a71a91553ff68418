"""``atelier submit``: send a job to a running Atelier server and, with --wait, follow it to the end.

    atelier submit --server https://atelier.example.com photo.jpg starry.jpg --size 512 --wait -o out.png

The option flags are `atelier stylize`'s (both are built from spec/options.py's schema); the server
checks them again. With --wait it follows the job's event stream (GET /api/jobs/{id}/events) with a
tqdm bar (step, loss, ETA), reconnecting when the server ends the stream, and writes the result. A
job that fails or is cancelled exits 1 with the server's message; Ctrl-C asks whether to cancel the
job on the server (exit 130 either way). The submission carries an Idempotency-Key, so its retries
after a dropped connection never create a second job.

Standard library HTTP (urllib) and tqdm only: no TensorFlow, nothing to install beyond the CLI.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec.options import OptionSpec, option_specs

FINISHED = ("succeeded", "failed", "cancelled")
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
SUBMIT_ATTEMPTS = 4  # a dropped connection or a 503 is retried (same Idempotency-Key) this many times
RECONNECT_ATTEMPTS = 30  # the event stream is reopened after a failure this many times in a row
STREAM_TIMEOUT_SECONDS = 60  # the server sends a heartbeat every 10 s and ends a stream every 15 s
RESULT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


class ClientError(Exception):
    """What went wrong, as one line for stderr (the server's own message where it gave one)."""


def add_submit_command(
    commands: Any, add_option_flag: Callable[[argparse.ArgumentParser, OptionSpec], None]
) -> None:
    """The `submit` subcommand, with every engine option as `atelier stylize` has it."""
    submit = commands.add_parser(
        "submit",
        help="send CONTENT and STYLE(s) to a running server (or a batch: --contents, --styles, --out-dir)",
    )
    submit.add_argument("content", type=Path, nargs="?", metavar="CONTENT")
    submit.add_argument("styles", type=Path, nargs="*", metavar="STYLE")
    submit.add_argument(
        "--style-id", dest="style_ids", action="append", default=[], metavar="ID",
        help="a painting of the server's library (GET /api/styles) after the STYLE files, as stylize's "
        "--style-id; repeatable, and in a batch too",
    )  # fmt: skip
    submit.add_argument(
        "--contents", type=Path, nargs="+", metavar="PATH",
        help="a batch: these content images (a folder: every image in it), each in every style of --styles",
    )  # fmt: skip
    submit.add_argument(
        "--styles", dest="batch_styles", type=Path, nargs="+", metavar="PATH", help="a batch's styles"
    )
    submit.add_argument(
        "--out-dir", type=Path, help="a batch: wait, then write every result here as CONTENT__STYLE.png"
    )
    submit.add_argument(
        "--server",
        default=os.environ.get("ATELIER_SERVER", "http://127.0.0.1:8000"),
        help="the server's base URL (default: ATELIER_SERVER, else http://127.0.0.1:8000)",
    )
    submit.add_argument(
        "--wait", action="store_true", help="follow the job until it ends, with a progress bar"
    )
    submit.add_argument("-o", "--output", type=Path, help="with --wait: write the result here (.png or .jpg)")
    submit.add_argument(
        "--mask", dest="masks", action="append", metavar="PATH", help="as for stylize ('none')"
    )
    submit.add_argument("--preset", help="quick, standard, high or print: fills size and iterations")
    submit.add_argument("--callback-url", help="the server POSTs the job's signed event here when it ends")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    for spec in option_specs():
        add_option_flag(submit, spec)
    for action in submit._actions:  # the server keeps previews; stylize's flag saves them as files
        if action.dest == "preview_every" and action.help:
            action.help = action.help.replace(" Each preview is saved as OUT_<step>.", "")


def form_fields(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The options given on the command line as the API's form fields (public names, text values)."""
    fields: list[tuple[str, str]] = []
    for spec in option_specs():
        value = getattr(args, spec.name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple | list):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        fields.append((spec.public, text))
    if args.preset:
        fields.append(("preset", args.preset))
    if args.callback_url:
        fields.append(("callback_url", args.callback_url))
    return fields


def library_styles(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The --style-id paintings as form fields, sent after the style files: their order is the styles'."""
    return [("style_id", style_id) for style_id in args.style_ids]


def run_submit(args: argparse.Namespace) -> int:
    if args.contents or args.batch_styles or args.out_dir:
        return run_batch(args)
    if args.content is None or not (args.styles or args.style_ids):
        raise ClientError(
            "give CONTENT and at least one STYLE or --style-id (or a batch: --contents, --styles, --out-dir)"
        )
    if args.output is not None:
        if args.output.suffix.lower() not in RESULT_FORMATS:
            raise ClientError(f"{args.output}: the result is written as .png or .jpg")
        if not args.output.parent.is_dir():
            raise ClientError(f"{args.output.parent} does not exist; create it or choose another output path")
        args.wait = True
    client = Client(args.server.rstrip("/"))
    files = [("content", args.content), *[("style", path) for path in args.styles]]
    files += [("mask", None if str(path).lower() == "none" else Path(path)) for path in args.masks or []]
    created = client.submit(form_fields(args), files, after_files=library_styles(args))
    job_id = created["id"]
    sys.stderr.write(f"atelier: job {job_id} queued: {client.base}{created['page_url']}\n")
    if not args.wait:
        sys.stdout.write(
            json.dumps({k: created[k] for k in ("id", "token", "status_url", "page_url")}) + "\n"
        )
        return 0
    try:
        final = follow(client, job_id, quiet=args.quiet)
    except KeyboardInterrupt:
        return interrupted(client, job_id, created["token"])
    if final["status"] != "succeeded":
        raise ClientError(f"job {job_id} {final['status']}: {final.get('error') or 'no reason given'}")
    if args.output is not None:
        fmt = RESULT_FORMATS[args.output.suffix.lower()]
        args.output.write_bytes(client.get_bytes(f"/api/jobs/{job_id}/result?format={fmt}"))
        sys.stdout.write(f"wrote {args.output} ({final['step']} steps, {final['elapsed_seconds']:.1f} s)\n")
    else:
        sys.stdout.write(f"{client.base}{final['result_url']}\n")
    return 0


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def image_paths(paths: list[Path] | None, what: str) -> list[Path]:
    """The paths given, a folder standing for every image file in it (by name)."""
    found: list[Path] = []
    for path in paths or []:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(path)
    if not found:
        raise ClientError(f"a batch needs at least one {what} image (--{what}s PATH ...)")
    return found


def run_batch(args: argparse.Namespace) -> int:
    """Submit a batch (every content in every style), follow it, write its results to --out-dir."""
    contents = image_paths(args.contents, "content")
    styles = image_paths(args.batch_styles, "style") if args.batch_styles or not args.style_ids else []
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        args.wait = True
    client = Client(args.server.rstrip("/"))
    files = [("content", path) for path in contents] + [("style", path) for path in styles]
    created = client.submit(form_fields(args), files, path="/api/batches", after_files=library_styles(args))
    batch_id = created["id"]
    jobs, page = len(created["jobs"]), f"{client.base}{created['page_url']}"
    sys.stderr.write(f"atelier: batch {batch_id} queued, {jobs} job(s): {page}\n")
    if not args.wait:
        sys.stdout.write(
            json.dumps({k: created[k] for k in ("id", "token", "jobs", "status_url", "page_url")}) + "\n"
        )
        return 0
    try:
        final = follow(client, batch_id, quiet=args.quiet, batch=True)
    except KeyboardInterrupt:
        return interrupted(client, batch_id, created["token"], what="batch")
    written = write_results(client, final, args.out_dir) if args.out_dir is not None else []
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    failed = [job for job in final["jobs"] if job["status"] != "succeeded"]
    for job in failed:
        name = f"{final['contents'][job['content']]} in {final['styles'][job['style']]}"
        sys.stderr.write(
            f"atelier: job {job['id']} ({name}) {job['status']}: {job['error'] or 'no reason given'}\n"
        )
    if failed:
        raise ClientError(f"batch {batch_id}: {len(failed)} of {len(final['jobs'])} job(s) did not succeed")
    return 0


def write_results(client: Client, batch: dict[str, Any], out_dir: Path) -> list[Path]:
    """Every succeeded job's result as out_dir/CONTENT__STYLE.png (the names of the batch's ZIP)."""
    written = []
    for job in batch["jobs"]:
        if job["result_url"]:
            path = out_dir / f"{batch['contents'][job['content']]}__{batch['styles'][job['style']]}.png"
            path.write_bytes(client.get_bytes(job["result_url"]))
            written.append(path)
    return written


def follow(client: Client, item_id: str, quiet: bool = False, batch: bool = False) -> dict[str, Any]:
    """Follow the job's (or batch's) events until it ends; a tqdm bar (unless quiet) shows step, loss
    and ETA (for a batch: jobs ended of all, and the running one's step)."""
    from tqdm import tqdm

    failures = 0
    path = f"/api/batches/{item_id}/events" if batch else f"/api/jobs/{item_id}/events"
    unit = "job" if batch else "step"
    with tqdm(total=None, unit=unit, file=sys.stderr, disable=quiet, mininterval=0.5) as bar:
        while True:
            try:
                for status in client.events(path):
                    failures = 0
                    (show_batch if batch else show)(bar, status)
                    if status["status"] in (*FINISHED, "finished"):
                        return status
            except _Retryable:  # the server restarts, or the network dropped: the job goes on there
                failures += 1
                if failures > RECONNECT_ATTEMPTS:
                    raise
                time.sleep(1)
            # The server ended the stream (after ATELIER_EVENT_STREAM_SECONDS): reconnect, as a page does.


def show(bar: Any, status: dict[str, Any]) -> None:
    """One status on the bar: queued (with its place), then steps of iterations with loss and ETA."""
    if bar.total != status["iterations"]:
        bar.total = status["iterations"]
    if status["status"] == "queued":
        bar.set_description_str(f"queued (position {status['queue_position']})", refresh=False)
    else:
        bar.set_description_str(status["status"], refresh=False)
    bar.update(status["step"] - bar.n)
    postfix = {}
    if status["loss"].get("total") is not None:
        postfix["loss"] = f"{status['loss']['total']:.4g}"
    if status.get("eta_seconds") is not None:
        postfix["eta"] = f"{status['eta_seconds']:.0f}s"
    bar.set_postfix(postfix, refresh=True)


def show_batch(bar: Any, status: dict[str, Any]) -> None:
    """A batch's status on the bar: jobs ended of all, how many run, the running one's step."""
    totals = status["totals"]
    bar.total = totals["jobs"]
    ended = totals["jobs"] - totals["queued"] - totals["running"]
    bar.set_description_str(status["status"], refresh=False)
    bar.update(ended - bar.n)
    running = [job for job in status["jobs"] if job["status"] == "running"]
    postfix = {"running": str(totals["running"]), "failed": str(totals["failed"])}
    if running:
        postfix["step"] = f"{running[0]['step']}/{running[0]['iterations']}"
    bar.set_postfix(postfix, refresh=True)


def interrupted(client: Client, item_id: str, token: str, what: str = "job") -> int:
    """Ctrl-C while waiting: ask whether to cancel the job (or batch) on the server (no: it goes on)."""
    job_id = item_id
    sys.stderr.write(f"\natelier: cancel {what} {job_id} on the server? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline().strip().lower()
    except (KeyboardInterrupt, OSError):
        answer = ""
    path = f"/api/batches/{job_id}/cancel" if what == "batch" else f"/api/jobs/{job_id}/cancel"
    if answer in ("y", "yes"):
        client.cancel(path, token)
        sys.stderr.write(f"atelier: {what} {job_id} cancelled\n")
    else:
        page = "batches" if what == "batch" else "jobs"
        sys.stderr.write(f"atelier: {what} {job_id} goes on: {client.base}/{page}/{job_id}\n")
    return EXIT_INTERRUPTED


@dataclass
class Client:
    """The few calls of the JSON API the command needs, over urllib."""

    base: str

    def submit(
        self,
        fields: list[tuple[str, str]],
        files: list[tuple[str, Path | None]],
        path: str = "/api/jobs",
        after_files: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        body, content_type = multipart(fields, files, after_files or [])
        headers = {"Content-Type": content_type, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                return self._json("POST", path, body, headers)
            except _Retryable as error:
                if attempt == SUBMIT_ATTEMPTS:
                    raise ClientError(str(error)) from error
                time.sleep(error.retry_after)
        raise AssertionError("unreachable")

    def cancel(self, path: str, token: str) -> None:
        self._json("POST", path, b"", {"X-Job-Token": token})

    def get_bytes(self, path: str) -> bytes:
        with self._open("GET", path) as response:
            return response.read()

    def events(self, path: str) -> Iterator[dict[str, Any]]:
        """The status from each `data:` event of one stream (a job's or a batch's), until it ends."""
        with self._open("GET", path, timeout=STREAM_TIMEOUT_SECONDS) as response:
            event, data = "message", []
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    payload = json.loads("\n".join(data))
                    if event == "end" and payload.get("status") == "expired":
                        raise ClientError(f"{path}: no longer on the server (expired or deleted)")
                    if event == "message":
                        yield payload
                    event, data = "message", []

    def _json(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        with self._open(method, path, body, headers) as response:
            return json.loads(response.read())

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Any:
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {}, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (the user's own server)
        except urllib.error.HTTPError as error:
            detail = _detail(error)
            if error.code == 503 or error.code == 409:
                retry_after = int(error.headers.get("Retry-After") or 1)
                raise _Retryable(
                    f"the server is busy ({error.code}): {detail}", min(retry_after, 30)
                ) from error
            raise ClientError(f"the server refused ({error.code}): {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"cannot reach the server at {self.base}: {reason}", 1) from error


class _Retryable(ClientError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        return error.reason or "no detail"


def multipart(
    fields: list[tuple[str, str]],
    files: list[tuple[str, Path | None]],
    after_files: list[tuple[str, str]] | None = None,
) -> tuple[bytes, str]:
    """A multipart/form-data body of text fields, files (None: an empty part, "no mask") and the text
    fields that must follow the files (the server reads styles in part order)."""
    boundary = f"atelier-{uuid.uuid4().hex}"
    parts: list[bytes] = []

    def text(name: str, value: str) -> bytes:
        return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()

    parts += [text(name, value) for name, value in fields]
    for name, path in files:
        data = b"" if path is None else _read(path)
        filename = "" if path is None else path.name.replace('"', "_")
        kind = (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + f"Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n")
    parts += [text(name, value) for name, value in after_files or []]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ClientError(f"{path}: {error.strerror or error}") from error
