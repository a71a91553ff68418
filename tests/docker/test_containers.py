"""The images built and the compose stack run for real: `make docker-test` (docs/deploy.md, "Containers").

One Docker engine (started by scripts/docker-engine.sh if none answers), base images pulled or built from
Debian's packages (scripts/docker-base-images.sh), then `web` and `worker-cpu` built from the working tree
by docker-compose itself (with the nginx `proxy`), and docker-compose.yml + docker-compose.cpu.yml brought
up under a project name of its own, with random weights and the proxy's port on loopback. The tests then check
what an operator relies on: healthy services, a job end to end through the proxy to the web container,
non-root processes, a killed worker container's job resumed from its checkpoint by a new container, a Redis
restart mid-queue that loses no job, and `down -v` leaving nothing behind. Nothing is skipped for want of
Docker: a broken environment fails with one line.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.images import png_bytes
from tests.support.stack import free_port

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_OVERRIDE = Path(__file__).with_name("compose.test.yml")
COMPOSE_FILES = [REPO_ROOT / "docker-compose.yml", REPO_ROOT / "docker-compose.cpu.yml", TEST_OVERRIDE]
IMAGE_REGISTRY = "atelier-test"
IMAGE_TAG = "0.1.0"
IMAGES = {
    "web": f"{IMAGE_REGISTRY}/web:{IMAGE_TAG}",
    "worker-cpu": f"{IMAGE_REGISTRY}/worker-cpu:{IMAGE_TAG}",
}
PROXY_IMAGE = f"{IMAGE_REGISTRY}/proxy:{IMAGE_TAG}"
# The proxy is nginx on the Atelier base (its Python for the health check): not in IMAGES, whose images
# must have no pip left (the base image's own pip stays in the proxy's).
SIZE_GOALS_MB = {"web": 400, "worker-cpu": 1900, "proxy": 200}  # docs/deploy.md: video's FFmpeg and OpenCV
SERVICES = ["redis", "web", "proxy", "webhooks", "worker"]
# Extra CA certificates for the builds' downloads (networks that inspect TLS, as in CI here); the Dockerfile
# trusts docker/ca-certificates/*.crt in its dependency stages only.
HOST_CA_BUNDLE = Path(os.environ.get("ATELIER_DOCKER_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
CA_COPY = REPO_ROOT / "docker" / "ca-certificates" / "host-ca-bundle.crt"
# compose.test.yml runs the worker with these (a checkpoint every 10 steps, a 3 s lease).
CHECKPOINT_EVERY = 10
HEALTHY_TIMEOUT = 240


def broken_environment(message: str) -> None:
    """One line, no traceback: what is missing and how to fix it."""
    pytest.fail(f"docker-test: {message}", pytrace=False)


def run(command: list[str], timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or a failure showing the end of its output."""
    try:
        result = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"{' '.join(command)} ran past {timeout} s") from error
    if result.returncode != 0:
        tail = (result.stdout[-3000:] + result.stderr[-3000:]).strip()
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{tail}")
    return result.stdout


@dataclass
class Project:
    """One compose project: the files above, its own name, a free loopback port and the base images."""

    name: str
    env: dict[str, str]
    port: int
    timings: dict[str, float] = field(default_factory=dict)
    sizes_mb: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 180) -> str:
        files = [part for path in COMPOSE_FILES for part in ("-f", str(path))]
        return run(["docker-compose", "-p", self.name, *files, *args], timeout=timeout, env=self.env)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).split()
        assert len(ids) == 1, f"{service}: {len(ids)} containers"
        return ids[0]

    def health(self, service: str) -> str:
        return run(["docker", "inspect", "-f", "{{.State.Health.Status}}", self.container(service)]).strip()

    def wait_healthy(self, services: list[str], timeout: float = HEALTHY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while (states := {name: self.health(name) for name in services}) and any(
            state != "healthy" for state in states.values()
        ):
            if time.monotonic() > deadline:
                logs = self.compose("logs", "--tail", "30", *services)
                raise AssertionError(f"not healthy after {timeout} s: {states}\n{logs}")
            time.sleep(1)

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def submit(self, seed: int, size: int, iterations: int) -> str:
        files = [
            ("content", ("content.png", png_bytes(48, 48, seed=seed), "image/png")),
            ("style", ("style.png", png_bytes(48, 48, seed=seed + 1), "image/png")),
        ]
        data = {"size": str(size), "iterations": str(iterations)}
        response = httpx.post(f"{self.url}/api/jobs", files=files, data=data, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/jobs/{job_id}", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def wait_for(
        self, job_id: str, done: set[str], timeout: float = 180, until: Any = None
    ) -> dict[str, Any]:
        """Poll the job's status until it is in done (or until(status) holds); fail on a finished other."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                current = self.status(job_id)
            except httpx.TransportError:  # the web container's Redis may be restarting
                current = {"status": "unreachable"}
            if current["status"] in done or (until is not None and until(current)):
                return current
            assert current["status"] not in {"succeeded", "failed", "cancelled"}, current
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {current['status']} after {timeout} s: {current}")
            time.sleep(0.1)

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, volumes and networks that still exist (by compose's label)."""
        label = f"label=com.docker.compose.project={self.name}"
        return {
            kind: run(["docker", *command, "--filter", label]).split()
            for kind, command in {
                "containers": ["ps", "-aq"],
                "volumes": ["volume", "ls", "-q"],
                "networks": ["network", "ls", "-q"],
            }.items()
        }


def _compose_env(port: int, base_images: dict[str, str]) -> dict[str, str]:
    """The caller's environment without ATELIER_* (a developer's local settings must not reach the stack)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ATELIER_")}
    return (
        env
        | base_images
        | {
            "ATELIER_BUILD_WEIGHTS": "none",  # the test runs on random weights (compose.test.yml)
            "ATELIER_IMAGE_REGISTRY": IMAGE_REGISTRY,
            "ATELIER_IMAGE_TAG": IMAGE_TAG,
            "ATELIER_WEB_HOST_IP": "127.0.0.1",
            "ATELIER_WEB_PORT": str(port),
        }
    )


def _prepare_engine_and_base_images() -> dict[str, str]:
    for tool, package in (("docker", "docker.io"), ("docker-compose", "docker-compose")):
        if shutil.which(tool) is None:
            broken_environment(f"{tool} is not installed; apt-get install {package}")
    engine = subprocess.run(
        ["bash", "scripts/docker-engine.sh"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if engine.returncode != 0:
        broken_environment(engine.stderr.strip().splitlines()[-1])
    base = subprocess.run(
        ["bash", "scripts/docker-base-images.sh"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if base.returncode != 0:
        broken_environment(base.stderr.strip().splitlines()[-1])
    return dict(line.split("=", 1) for line in base.stdout.split())


@pytest.fixture(scope="module")
def project(request: pytest.FixtureRequest) -> Iterator[Project]:
    """Images built, the stack up and healthy; `down -v` however the module ends."""
    started = time.monotonic()
    base_images = _prepare_engine_and_base_images()
    port = free_port()
    project = Project(f"atelier-test-{uuid.uuid4().hex[:8]}", _compose_env(port, base_images), port)
    request.config.stash[DOCKER_REPORT] = project
    project.timings["engine and base images"] = time.monotonic() - started
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, CA_COPY)
    try:
        started = time.monotonic()
        project.compose("build", "--force-rm", "web", "worker", "proxy", timeout=1500)
        project.timings["build web, worker-cpu and proxy"] = time.monotonic() - started
        for target, image in (IMAGES | {"proxy": PROXY_IMAGE}).items():
            size = run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).strip()
            project.sizes_mb[target] = int(size) / 1e6
        started = time.monotonic()
        project.compose("up", "-d", "--no-build", timeout=300)
        project.wait_healthy(SERVICES)
        project.timings["up until healthy"] = time.monotonic() - started
        yield project
    finally:
        CA_COPY.unlink(missing_ok=True)
        started = time.monotonic()
        project.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
        project.timings["down -v"] = time.monotonic() - started


DOCKER_REPORT = pytest.StashKey[Project]()


def test_images_meet_their_size_goals_and_web_has_no_tensorflow(project: Project) -> None:
    for target, goal in SIZE_GOALS_MB.items():
        assert project.sizes_mb[target] <= goal, f"{target}: {project.sizes_mb[target]:.0f} MB > {goal} MB"
    probe = (
        "import importlib.util as u; print(u.find_spec('tensorflow') is None, u.find_spec('fastapi') is None)"
    )
    assert run(["docker", "run", "--rm", IMAGES["web"], "python", "-c", probe]).split() == ["True", "False"]


def test_no_image_keeps_the_build_ca_bundle_or_pip(project: Project) -> None:
    for image in IMAGES.values():
        history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image])
        assert "ca-certificates/" not in history and "ca-bundle" not in history, image
        probe = "test ! -e /build && ! python -m pip --version 2>/dev/null && echo clean"
        assert run(["docker", "run", "--rm", image, "sh", "-c", probe]).strip() == "clean", image


def buildkit_command() -> tuple[list[str], dict[str, str]]:
    """A docker build that uses BuildKit: buildx where installed, else a docker CLI older than 23 (Debian's
    docker.io 20.10), whose `docker build` still has BuildKit built in."""
    if subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "buildx", "build", "--load"], {}
    for client in ("/usr/bin/docker", "docker"):
        version = subprocess.run(
            [client, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if re.match(r"(1\d|2[0-2])\.", version):
            return [client, "build"], {"DOCKER_BUILDKIT": "1"}
    broken_environment("no BuildKit client: install docker-buildx, or Debian's docker.io (docker 20.10)")
    raise AssertionError("unreachable")


def test_web_also_builds_with_buildkit_without_a_tensorflow_stage(project: Project) -> None:
    """BuildKit builds only the stages the target needs; the legacy builder (above) every stage before it."""
    command, extra_env = buildkit_command()
    tag = f"{IMAGE_REGISTRY}/web-buildkit:{IMAGE_TAG}"
    base = project.env["ATELIER_PYTHON_IMAGE"]
    args = ["--progress=plain", "--build-arg", f"PYTHON_IMAGE={base}", "--target", "web", "-t", tag, "."]
    build = subprocess.run(
        [*command, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=project.env | extra_env,
        check=False,
    )
    log = build.stdout + build.stderr  # BuildKit's progress goes to stderr
    assert build.returncode == 0, log[-3000:]
    try:
        probe = "import app.main, importlib.util as u; print(u.find_spec('tensorflow') is None)"
        assert run(["docker", "run", "--rm", tag, "python", "-c", probe]).split()[-1] == "True"
    finally:
        run(["docker", "image", "rm", tag])
    assert "deps-worker" not in log


def test_without_baked_weights_imagenet_jobs_fail_with_the_engine_s_message(project: Project) -> None:
    """WEIGHTS=none (as built here): the worker image starts; ImageNet weights fail naming the file."""
    probe = (
        "from worker.engine.model import load_vgg19\n"
        "try:\n    load_vgg19('imagenet', '/models')\nexcept Exception as error:\n    print(error)"
    )
    message = run(["docker", "run", "--rm", IMAGES["worker-cpu"], "python", "-c", probe], timeout=180)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and "/models" in message, message


def test_services_are_healthy_and_only_the_proxy_s_loopback_port_is_published(project: Project) -> None:
    assert {name: project.health(name) for name in SERVICES} == dict.fromkeys(SERVICES, "healthy")
    published = run(["docker", "port", project.container("proxy")]).split("\n")
    assert [line for line in published if line] == [f"8080/tcp -> 127.0.0.1:{project.port}"]
    for service in ("redis", "web", "worker"):
        assert run(["docker", "port", project.container(service)]).strip() == "", service
    health = httpx.get(f"{project.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.headers["server"] == "nginx"  # answered through the proxy


def test_every_process_in_every_container_runs_as_a_non_root_user(project: Project) -> None:
    for service in SERVICES:
        status = run(["docker", "exec", project.container(service), "sh", "-c", "cat /proc/[0-9]*/status"])
        uids = {int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")}
        assert uids and 0 not in uids, f"{service}: processes run as uids {uids}"


def test_a_job_posted_to_the_web_container_runs_in_the_worker_and_its_png_comes_back(
    project: Project,
) -> None:
    job_id = project.submit(seed=1, size=32, iterations=20)
    done = project.wait_for(job_id, {"succeeded", "failed"}, timeout=180)
    assert done["status"] == "succeeded", done
    result = httpx.get(f"{project.url}{done['result_url']}", timeout=30)
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(result.content))
    assert image.format == "PNG" and max(image.size) == 32
    assert job_id in project.logs("worker")


def test_a_job_with_a_library_painting_and_an_example_photo_runs_through_the_containers(
    project: Project,
) -> None:
    styles = httpx.get(f"{project.url}/api/styles", timeout=10).json()
    assert len(styles) == 6  # the web image carries the library
    thumbnail = httpx.get(f"{project.url}{styles[0]['thumbnail_url']}", timeout=10)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    data = {"content_example": "chelsea", "style_id": "hokusai-great-wave", "size": "32", "iterations": "10"}
    response = httpx.post(f"{project.url}/api/jobs", data=data, timeout=30)
    assert response.status_code == 202, response.text
    done = project.wait_for(response.json()["id"], {"succeeded", "failed"}, timeout=180)
    # The worker read the painting from the job's storage, as an upload (its task never opens library/).
    assert done["status"] == "succeeded", done
    assert done["style_credits"][0]["artist"] == "Katsushika Hokusai"
    listed = run(["docker", "exec", project.container("worker"), "atelier", "styles"])
    assert "hokusai-great-wave" in listed  # the CLI in the worker image knows the library too


def test_a_killed_worker_container_s_job_resumes_from_its_checkpoint_in_a_new_one(project: Project) -> None:
    job_id = project.submit(seed=3, size=32, iterations=400)
    project.wait_for(job_id, set(), timeout=180, until=lambda s: s["step"] >= CHECKPOINT_EVERY + 5)
    old = project.container("worker")
    run(["docker", "kill", old])
    killed = project.status(job_id)
    assert killed["status"] == "running" and killed["step"] < killed["iterations"], killed
    # A new container (compose removes the dead one): the job waits for it, then resumes.
    project.compose("up", "-d", "--no-build", "--no-deps", "--force-recreate", "worker", timeout=120)
    assert project.container("worker") != old
    done = project.wait_for(job_id, {"succeeded", "failed"}, timeout=300)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    resumed = re.search(rf"job {job_id}: resuming from the checkpoint of step (\d+)", project.logs("worker"))
    assert resumed and int(resumed.group(1)) >= CHECKPOINT_EVERY, project.logs("worker")[-3000:]
    assert httpx.get(f"{project.url}{done['result_url']}", timeout=30).status_code == 200
    project.wait_healthy(["worker"])


def test_a_redis_restart_mid_queue_loses_no_job(project: Project) -> None:
    running = project.submit(seed=5, size=32, iterations=150)
    project.wait_for(running, set(), timeout=120, until=lambda s: s["status"] == "running")
    queued = project.submit(seed=7, size=32, iterations=20)
    assert project.status(queued)["status"] == "queued"
    run(["docker", "restart", "--time", "10", project.container("redis")], timeout=60)
    project.wait_healthy(["redis"])
    for job_id in (running, queued):
        done = project.wait_for(job_id, {"succeeded", "failed"}, timeout=300)
        assert done["status"] == "succeeded", done


def test_down_v_leaves_no_container_volume_or_network(project: Project) -> None:
    assert all(project.leftovers().values()), "the stack should exist before down"
    project.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}


@pytest.mark.skipif(
    os.environ.get("ATELIER_DOCKER_TEST_GPU") != "1", reason="on request: make docker-test GPU=1"
)
def test_gpu_worker_image_builds_up_to_its_cuda_dependency_stage() -> None:
    image = f"{IMAGE_REGISTRY}/deps-worker-gpu:{IMAGE_TAG}"
    base_images = _prepare_engine_and_base_images()
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, CA_COPY)
    try:
        run(
            [
                "docker",
                "build",
                "--force-rm",  # no container of a failed step left behind
                "--target",
                "deps-worker-gpu",
                "--build-arg",
                f"PYTHON_IMAGE={base_images['ATELIER_PYTHON_IMAGE']}",
                # The legacy builder also builds the stages before, the weights stage among them.
                "--build-arg",
                "WEIGHTS=none",
                "-t",
                image,
                ".",
            ],
            timeout=3600,
        )
    finally:
        CA_COPY.unlink(missing_ok=True)
    probe = "import importlib.metadata as m; print(m.version('tensorflow'), m.version('nvidia-cudnn-cu12'))"
    versions = run(["docker", "run", "--rm", image, "python", "-c", probe])
    assert versions.split()[0] == "2.21.0"
