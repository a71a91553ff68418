"""docker-compose.yml and its variants: what an operator's `docker compose up` would start."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from tests.deploy.compose_files import (
    BASE_FILE,
    CPU_FILE,
    MULTI_GPU_FILE,
    REPO_ROOT,
    compose_command,
    load,
    with_defaults,
)

OVERRIDE_FILE = REPO_ROOT / "docker-compose.override.yml"
GPU_DEVICE = {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
# Variables the images' scripts read besides the settings (docker/start-worker.sh, docker/claim-gpu.sh).
SCRIPT_VARIABLES = {"ATELIER_WORKER_QUEUES", "ATELIER_GPU_LOCK_DIR"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(BASE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {name: with_defaults(str(value)) for name, value in service.get("environment", {}).items()}


def test_plain_up_starts_redis_web_proxy_workers_and_flower_is_opt_in(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "web", "proxy", "webhooks", "worker", "flower"}
    for name in ("redis", "web", "proxy", "webhooks", "worker"):
        assert "profiles" not in services[name], name
    assert services["flower"]["profiles"] == ["monitoring"]


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_images_are_pinned_to_versions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = with_defaults(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"
    assert with_defaults(services["redis"]["image"]).startswith("redis:7.")


def test_base_images_are_variables_with_the_pinned_defaults(services: dict[str, Any]) -> None:
    """A site without Docker Hub points these at its mirror or at scripts/docker-base-images.sh's images."""
    assert services["redis"]["image"] == "${ATELIER_REDIS_IMAGE:-redis:7.4.6}"
    for name in ("web", "proxy", "worker"):
        assert services[name]["build"]["args"]["PYTHON_IMAGE"] == (
            "${ATELIER_PYTHON_IMAGE:-python:3.11.14-slim-bookworm}"
        )
    assert services["worker"]["build"]["args"]["WEIGHTS"] == "${ATELIER_BUILD_WEIGHTS:-download}"


def test_redis_persists_appendonly_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_web_publishes_no_port_checks_healthz_and_waits_for_redis(services: dict[str, Any]) -> None:
    web = services["web"]
    assert web["build"]["target"] == "web"
    assert "ports" not in web  # clients come through the proxy, which has the read timeouts
    assert any("http://127.0.0.1:8000/healthz" in part for part in web["healthcheck"]["test"])
    assert web["depends_on"] == {"redis": {"condition": "service_healthy"}}
    # uvicorn (FORWARDED_ALLOW_IPS) trusts the proxy's X-Forwarded-For from Docker's private networks only.
    trusted = with_defaults(web["environment"]["FORWARDED_ALLOW_IPS"])
    assert trusted == "172.16.0.0/12,192.168.0.0/16,10.0.0.0/8"


def test_proxy_publishes_8000_on_loopback_in_front_of_the_healthy_web(services: dict[str, Any]) -> None:
    proxy = services["proxy"]
    assert proxy["build"]["context"] == "docker/proxy"
    assert (REPO_ROOT / "docker" / "proxy" / "Dockerfile").is_file()
    assert [with_defaults(port) for port in proxy["ports"]] == ["127.0.0.1:8000:8080"]
    assert any("http://127.0.0.1:8080/healthz" in part for part in proxy["healthcheck"]["test"])
    assert proxy["depends_on"] == {"web": {"condition": "service_healthy"}}
    env = environment(proxy)
    assert env["ATELIER_PROXY_UPSTREAM"] == "web:8000"
    assert (env["ATELIER_PROXY_HEADER_TIMEOUT"], env["ATELIER_PROXY_BODY_TIMEOUT"]) == ("10s", "15s")


def test_proxy_and_web_read_the_same_upload_limits_as_the_settings_defaults(
    services: dict[str, Any],
) -> None:
    """The proxy's body limit is computed from these (docker/proxy/render-conf.sh; tests/deploy/test_proxy.py
    checks the rendered limit against the web's own): both services must see the same values."""
    defaults = Settings.model_fields
    expected = {
        "ATELIER_MAX_UPLOAD_BYTES": str(defaults["max_upload_bytes"].default),
        "ATELIER_MAX_STYLE_IMAGES": str(defaults["max_style_images"].default),
    }
    for name in ("web", "proxy"):
        env = environment(services[name])
        assert {key: env[key] for key in expected} == expected, name
    proxy_env, web_env = services["proxy"]["environment"], services["web"]["environment"]
    assert proxy_env["ATELIER_MAX_UPLOAD_BYTES"] == web_env["ATELIER_MAX_UPLOAD_BYTES"]


def test_plain_up_reserves_one_nvidia_gpu_for_the_worker_through_the_override_file(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    assert worker["build"]["target"] == "worker"
    assert "deploy" not in worker  # in docker-compose.override.yml, which `-f` variants leave out
    override = load(OVERRIDE_FILE)["services"]
    assert set(override) == {"worker"}
    assert override["worker"] == {"deploy": {"resources": {"reservations": {"devices": [GPU_DEVICE]}}}}
    assert worker["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert worker["healthcheck"]["test"] == ["CMD", "worker-healthcheck.sh"]


def test_worker_takes_one_job_at_a_time() -> None:
    script = (REPO_ROOT / "docker" / "start-worker.sh").read_text()
    assert "--concurrency 1" in script
    assert "--prefetch-multiplier 1" in script


def test_webhooks_run_from_the_web_image_on_their_own_queue_with_the_signing_key(
    services: dict[str, Any],
) -> None:
    webhooks = services["webhooks"]
    assert webhooks["image"] == services["web"]["image"]  # no TensorFlow, no GPU
    assert "build" not in webhooks and "deploy" not in webhooks
    assert webhooks["command"][:4] == ["celery", "-A", "worker.webhooks", "worker"]
    assert "--pool=threads" in webhooks["command"]
    for name in ("web", "worker", "webhooks"):  # the web queues and signs, the workers' finish queues
        assert "ATELIER_WEBHOOK_SECRET" in services[name]["environment"], name


def test_web_and_worker_share_the_storage_volume(compose: dict[str, Any], services: dict[str, Any]) -> None:
    mounts = {name: services[name]["volumes"] for name in ("web", "worker")}
    assert mounts["web"] == mounts["worker"] == ["storage:/data/storage"]
    assert "storage" in compose["volumes"]
    for name in ("web", "worker"):
        env = environment(services[name])
        assert env["ATELIER_STORAGE_DIR"] == "/data/storage"
        assert env["ATELIER_STORAGE_URL"] == ""  # local storage unless the operator sets s3://...


def test_environment_names_are_real_settings(services: dict[str, Any]) -> None:
    known = {f"ATELIER_{name.upper()}" for name in Settings.model_fields} | SCRIPT_VARIABLES
    for name in ("web", "worker", "webhooks"):
        env = environment(services[name])
        unknown = {variable for variable in env if variable.startswith("ATELIER_")} - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        assert env["ATELIER_REDIS_URL"] == "redis://redis:6379/0"
        Settings(
            **{
                key.removeprefix("ATELIER_").lower(): value
                for key, value in env.items()
                if key.startswith("ATELIER_") and key not in SCRIPT_VARIABLES and value != ""
            }
        )


def test_flower_is_pinned_loopback_only_and_uses_the_broker(services: dict[str, Any]) -> None:
    flower = services["flower"]
    command = [with_defaults(part) for part in flower["command"]]
    assert command[:3] == ["celery", "--broker=redis://redis:6379/0", "flower"]
    assert [with_defaults(port) for port in flower["ports"]] == ["127.0.0.1:5555:5555"]
    assert flower["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_variants_only_add_so_docker_compose_1_29_can_merge_them() -> None:
    """No `!reset` / `!override` (Compose v2.24+): Debian's docker-compose 1.29 cannot read them."""
    for path in (BASE_FILE, OVERRIDE_FILE, CPU_FILE, MULTI_GPU_FILE):
        assert not re.search(r"!(reset|override)\b", path.read_text().split("\nservices:", 1)[1]), path.name


def test_cpu_variant_builds_worker_cpu_without_a_gpu() -> None:
    worker = load(CPU_FILE)["services"]["worker"]
    assert worker["build"]["target"] == "worker-cpu"
    assert "deploy" not in worker
    assert "worker-cpu" in with_defaults(worker["image"])


def test_multi_gpu_variant_shows_every_gpu_and_claims_one_per_worker() -> None:
    variant = load(MULTI_GPU_FILE)
    worker = variant["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    lock_dir = worker["environment"]["ATELIER_GPU_LOCK_DIR"]
    assert worker["volumes"] == [f"gpu-locks:{lock_dir}"]
    assert "gpu-locks" in variant["volumes"]


# --- the real Docker Compose CLI: Compose v2 where installed, else Debian's docker-compose 1.29 ----------
# scripts/docker-install.sh (.ci/run, make docker-test) installs docker-compose; without any Compose CLI
# these fail rather than skip (apt-get install docker-compose).

COMPOSE = compose_command()


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None, "no Docker Compose CLI here: apt-get install docker-compose"
    # No ATELIER_* of the caller's shell: the defaults of the files are what is checked.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ATELIER_")}
    return subprocess.run(
        [*COMPOSE[0], *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def merged(*args: str) -> dict[str, Any]:
    result = run_compose(*args, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("profile", [[], ["--profile", "monitoring"]])
def test_compose_config_accepts_the_file(profile: list[str]) -> None:
    result = run_compose("-f", str(BASE_FILE), *profile, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_plain_compose_merges_the_gpu_reservation_and_the_proxy_publishes_on_loopback() -> None:
    config = merged()  # no -f: docker-compose.yml + docker-compose.override.yml
    worker = config["services"]["worker"]
    assert worker["build"]["target"] == "worker"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert [{**device, "count": int(device["count"])} for device in devices] == [GPU_DEVICE]
    # 1.29 prints the short syntax, v2 the long one.
    ports = [
        port.removesuffix("/tcp")
        if isinstance(port, str)
        else f"{port['host_ip']}:{port['published']}:{port['target']}"
        for port in config["services"]["proxy"]["ports"]
    ]
    assert ports == ["127.0.0.1:8000:8080"]
    assert "ports" not in config["services"]["web"]


@pytest.mark.parametrize("variant", [CPU_FILE, MULTI_GPU_FILE])
def test_compose_config_merges_the_variants(variant: Path) -> None:
    worker = merged("-f", str(BASE_FILE), "-f", str(variant))["services"]["worker"]
    if variant == CPU_FILE:
        assert worker["build"]["target"] == "worker-cpu"
        assert "resources" not in worker.get("deploy", {})
    else:
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert [device["count"] for device in devices] in (["all"], [-1])  # 1.29 / v2 spelling
        assert worker["environment"]["ATELIER_GPU_LOCK_DIR"] == "/var/lib/atelier/gpu-locks"
