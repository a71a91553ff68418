"""The Dockerfile read as text: targets, pins, users, stage order, context (tests/docker builds it)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FINAL_TARGETS = ("web", "worker", "worker-cpu")


@dataclass
class Dockerfile:
    args: dict[str, str]  # the build arguments declared before the first FROM, with their defaults
    stages: list[Stage]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def arguments(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> Dockerfile:
    """Global build arguments and stages in order; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    args: dict[str, str] = {}
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = arguments.strip().partition("=")
            args[name] = default
        elif instruction == "FROM":
            parts = arguments.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", f"FROM without a stage name: {line}"
            stages.append(Stage(name=parts[2], base=parts[0]))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, arguments.strip()))
    return Dockerfile(args, stages)


DOCKERFILE_TEXT = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE_TEXT)


@pytest.fixture(scope="module")
def stages(dockerfile: Dockerfile) -> dict[str, Stage]:
    names = [stage.name for stage in dockerfile.stages]
    assert len(names) == len(set(names)), f"duplicate stage names: {names}"
    return {stage.name: stage for stage in dockerfile.stages}


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def test_targets_exist(stages: dict[str, Stage]) -> None:
    assert set(FINAL_TARGETS) <= set(stages)


def test_the_base_image_is_a_build_argument_with_a_pinned_default(dockerfile: Dockerfile) -> None:
    external = {
        stage.base for stage in dockerfile.stages if stage.base not in {s.name for s in dockerfile.stages}
    }
    assert external == {"${PYTHON_IMAGE}"}, external
    repository, _, tag = dockerfile.args["PYTHON_IMAGE"].partition(":")
    assert repository == "python" and re.match(r"3\.11\.\d+-slim-bookworm$", tag), dockerfile.args


def test_builds_with_the_legacy_builder_too() -> None:
    """No BuildKit-only syntax: the legacy builder (no buildx here) rejects these or cannot fetch them."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE_TEXT, re.MULTILINE | re.IGNORECASE)
    instructions = [
        line.strip() for line in DOCKERFILE_TEXT.splitlines() if not line.lstrip().startswith("#")
    ]
    assert not [line for line in instructions if "--chmod" in line or "--chown" in line.split("COPY")[0]]
    assert not [line for line in instructions if re.match(r"RUN\s+--(mount|network|security)", line)]


def test_stage_order_keeps_tensorflow_out_of_the_web_build(dockerfile: Dockerfile) -> None:
    """The legacy builder builds every stage before the target: none before `web` may install TensorFlow."""
    order = [stage.name for stage in dockerfile.stages]
    installs_tensorflow = [
        stage.name
        for stage in dockerfile.stages
        if any(
            re.search(r"requirements\.py \S+ [\w -]*\btf-(cpu|gpu)\b", run) for run in stage.arguments("RUN")
        )
    ]
    assert installs_tensorflow == ["deps-worker-cpu", "deps-worker-gpu"]
    assert order.index("web") < order.index("deps-worker-cpu") < order.index("worker-cpu")
    assert order.index("worker-cpu") < order.index("deps-worker-gpu"), "the CUDA stage must come last"


def test_extra_ca_certificates_stay_in_the_dependency_stages(stages: dict[str, Stage]) -> None:
    copies = {name: " ".join(stage.arguments("COPY")) for name, stage in stages.items()}
    assert [name for name, copy in copies.items() if "docker/ca-certificates/" in copy] == ["deps"]
    assert "PIP_CERT=/build/ca-bundle.crt" in " ".join(stages["deps"].arguments("ENV"))
    for target in FINAL_TARGETS:
        assert stages[target].base == "base", f"{target} must start from base, not from a stage with the CA"


def test_every_pip_install_of_requirements_is_constrained(stages: dict[str, Stage]) -> None:
    installs = [run for stage in stages.values() for run in stage.arguments("RUN") if "pip install" in run]
    assert installs
    for run in installs:
        for command in run.split("&&"):
            if "pip install" not in command:
                continue
            words = shlex.split(command)
            constrained = "-c" in words and "/build/constraints.txt" in words
            project_only = "--no-deps" in words  # the project itself: its dependencies come from above
            assert constrained or project_only, f"unpinned install: {command.strip()}"
            if constrained:  # a missing wheel must fail the build, not reach for a compiler
                assert "--only-binary=:all:" in words, f"may build from source: {command.strip()}"


def test_final_stages_run_as_the_non_root_user(stages: dict[str, Stage]) -> None:
    base_runs = " ".join(run for stage in stages.values() for run in stage.arguments("RUN"))
    assert re.search(r"useradd .*--uid 10001 .*atelier", base_runs)
    for target in FINAL_TARGETS:
        users = stages[target].arguments("USER")
        assert users and users[-1] == "atelier", f"{target} does not end as USER atelier"
        after_user = stages[target].instructions[
            max(i for i, (name, _) in enumerate(stages[target].instructions) if name == "USER") :
        ]
        assert not [arguments for name, arguments in after_user if name == "RUN"], f"{target}: RUN after USER"


def test_final_stages_install_no_compilers(stages: dict[str, Stage]) -> None:
    for target in FINAL_TARGETS:
        for stage in lineage(stages, target):
            for run in stage.arguments("RUN"):
                assert not re.search(r"apt-get|build-essential|gcc|g\+\+", run), f"{stage.name}: {run}"


def test_web_image_has_no_tensorflow_and_ships_templates_static_library(stages: dict[str, Stage]) -> None:
    web = stages["web"]
    copies = web.arguments("COPY")
    assert "--from=deps-web /opt/venv /opt/venv" in copies
    assert "templates ./templates" in copies and "static ./static" in copies
    assert "library ./library" in copies  # the style library and its credits (core/library.py)
    assert "spec ./spec" in copies
    # Of worker/, only the webhooks worker (compose's `webhooks` service runs it from this image): no engine.
    assert [copy for copy in copies if copy.startswith("worker")] == [
        "worker/__init__.py worker/webhooks.py ./worker/"
    ]
    runs = " ".join(run for stage in lineage(stages, "deps-web") for run in stage.arguments("RUN"))
    extras = re.search(r"requirements\.py /build/pyproject\.toml ([\w -]+) >", runs)
    assert extras and extras.group(1).split() == ["web"]
    requirements = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "docker" / "requirements.py"),
            str(REPO_ROOT / "pyproject.toml"),
            "web",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "fastapi" in requirements and "tensorflow" not in requirements.lower()


def test_web_image_ships_every_project_module_the_web_imports(stages: dict[str, Stage]) -> None:
    """What `import app.main` loads of app/, core/ and worker/ must be in the web image."""
    probe = (
        "import sys, app.main; "
        "print(*sorted(m.__file__ for n, m in list(sys.modules.items()) "
        "if n.split('.')[0] in ('app', 'core', 'worker') and getattr(m, '__file__', None)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    shipped: list[str] = []
    for copy in stages["web"].arguments("COPY"):
        words = copy.split()
        if not words[0].startswith("--"):
            shipped += words[:-1]
    for path in (str(Path(file).relative_to(REPO_ROOT)) for file in loaded):
        assert any(path == source or path.startswith(source + "/") for source in shipped), (
            f"the web imports {path}, which the web image does not have"
        )


def test_worker_weights_are_downloaded_taken_from_a_file_or_left_out(stages: dict[str, Stage]) -> None:
    weights = stages["weights"]
    assert "WEIGHTS=download" in weights.arguments("ARG")
    run = " ".join(weights.arguments("RUN"))
    assert "download) PYTHONPATH=/src atelier fetch-weights --model-dir /models" in run
    assert "file) cp /build/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 /models/" in run
    assert "none)" in run and "exit 2" in run  # an unknown value stops the build
    assert "docker/weights/ /build/weights/" in weights.arguments("COPY")
    for target in ("worker", "worker-cpu"):
        assert "--from=weights /models /models" in stages[target].arguments("COPY")
        env = " ".join(stages[target].arguments("ENV"))
        assert "ATELIER_MODEL_DIR=/models" in env and "ATELIER_WEIGHTS=imagenet" in env


def test_gpu_worker_gets_the_cuda_build_and_the_cpu_worker_tensorflow_cpu(stages: dict[str, Stage]) -> None:
    gpu_runs = " ".join(stages["deps-worker-gpu"].arguments("RUN"))
    cpu_runs = " ".join(stages["deps-worker-cpu"].arguments("RUN"))
    assert "worker tf-gpu" in gpu_runs and "-c /build/constraints-gpu.txt" in gpu_runs
    assert "worker tf-cpu" in cpu_runs
    assert "--from=deps-worker-gpu /opt/venv /opt/venv" in stages["worker"].arguments("COPY")
    assert "--from=deps-worker-cpu /opt/venv /opt/venv" in stages["worker-cpu"].arguments("COPY")


def test_gpu_pins_pin_tensorflow_exactly_and_do_not_contradict_constraints() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert all("==" in line for line in lines), f"{path.name}: every line must be NAME==VERSION"
        return {
            re.sub(r"[-_.]+", "-", name).lower(): version
            for name, version in (line.split("==") for line in lines)
        }

    gpu, shared = pins(REPO_ROOT / "docker" / "constraints-gpu.txt"), pins(REPO_ROOT / "constraints.txt")
    assert gpu["tensorflow"] == shared["tensorflow-cpu"] == "2.21.0"
    assert any(name.startswith("nvidia-cudnn") for name in gpu)
    assert not set(gpu) & set(shared), "a package pinned in both files"


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves path out (.dockerignore patterns: prefixes and globs)."""
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or path == pattern or path.startswith(pattern + "/"):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in path.split("/")):
            return True
    return False


def test_dockerignore_leaves_out_venv_data_and_caches() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".venv",
        ".venv/bin/python",
        "data/storage/jobs/x",
        "tests/artifacts/a.png",
        ".git/HEAD",
        "app/__pycache__/main.cpython-311.pyc",
        ".pytest_cache",
        ".env",
    ):
        assert is_ignored(path, patterns), path


def test_every_copied_source_is_in_the_build_context(stages: dict[str, Stage]) -> None:
    patterns = dockerignore_patterns()
    for stage in stages.values():
        for copy in stage.arguments("COPY"):
            words = [word for word in copy.split() if not word.startswith("--")]
            if any(word.startswith("--from=") for word in copy.split()):
                continue
            for source in words[:-1]:
                assert (REPO_ROOT / source).exists(), f"{stage.name}: COPY {source}: no such file"
                assert not is_ignored(source, patterns), (
                    f"{stage.name}: COPY {source}: left out by .dockerignore"
                )


PROXY_DIR = REPO_ROOT / "docker" / "proxy"


def test_the_proxy_image_is_debian_s_nginx_on_the_same_base_running_unprivileged() -> None:
    """docker/proxy/Dockerfile (compose's `proxy`; tests/deploy/test_proxy.py runs its files with nginx)."""
    text = (PROXY_DIR / "Dockerfile").read_text(encoding="utf-8")
    proxy = parse_dockerfile(text)
    assert proxy.args["PYTHON_IMAGE"] == parse_dockerfile(DOCKERFILE_TEXT).args["PYTHON_IMAGE"]
    [stage] = proxy.stages
    assert stage.base == "${PYTHON_IMAGE}"
    assert any(
        re.search(r"apt-get install .*--no-install-recommends nginx\b", run) for run in stage.arguments("RUN")
    )
    assert not re.search(r"^#\s*syntax\s*=|--chmod|RUN\s+--mount", text, re.MULTILINE | re.IGNORECASE)
    names = [name for name, _ in stage.instructions]
    assert stage.arguments("USER") == ["www-data"] and "RUN" not in names[names.index("USER") :]
    for copy in stage.arguments("COPY"):
        for source in copy.split()[:-1]:
            assert (PROXY_DIR / source).is_file(), f"COPY {source}: not in docker/proxy/"
    assert stage.arguments("CMD") == ['["/etc/atelier-proxy/start-proxy.sh"]']
