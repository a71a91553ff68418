# Atelier: `make run` starts Redis (if none answers), a Celery worker and the web app;
# `make test` runs the whole suite. Both install what they need on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test test-fast soak lint audit bench bench-service bench-resources bench-targets bench-style-quality bench-video system-deps install clean docker-test

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[web,worker,tf-cpu,dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

run: system-deps $(STAMP)
	PORT=$(PORT) bash scripts/run.sh

# Two processes, a test module each at a time (--dist loadfile keeps a module's fixtures in one); the
# 25 slowest tests are listed at the end. Times measured on 2 vCPUs: docs/testing.md.
# PYTEST_ARGS="-n 0" runs serially.
test: system-deps $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 --dist loadfile --durations=25 $(PYTEST_ARGS)

# The fast tier: every test that starts no real process besides a redis-server (engine, in-process web,
# job store, documents); tests/conftest.py marks the others `processes` (docs/testing.md).
test-fast: system-deps $(STAMP)
	$(PY) -m pytest -m "not processes" $(PYTEST_ARGS)

# The soak (40 jobs from 8 clients, leaks, worker memory; docs/reliability.md) is not part of `test`:
# pyproject's addopts ignore tests/soak unless it is named, as here. Bounded to 10 minutes.
soak: system-deps $(STAMP)
	$(PY) -m pytest -q tests/soak $(PYTEST_ARGS)

# The images built and the compose stack run in a real Docker engine (tests/docker; docs/deploy.md, "Containers").
# Installs docker.io, debootstrap and docker-compose if missing, starts dockerd if no engine answers, builds the
# base images from Debian's packages if Docker Hub cannot be reached. GPU=1 also builds the GPU worker's CUDA
# dependency stage (about 7 GB). A broken environment stops here with one line.
docker-test: $(STAMP)
	bash scripts/docker-install.sh
	bash scripts/docker-engine.sh
	status=0; \
	{ bash scripts/docker-base-images.sh > /dev/null && \
	  ATELIER_DOCKER_TEST_GPU=$(if $(GPU),1,0) $(PY) -m pytest -p no:cacheprovider --timeout 1800 tests/docker $(PYTEST_ARGS); \
	} || status=$$?; \
	bash scripts/docker-engine.sh stop; exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Known vulnerabilities of the installed packages (pip-audit). Exit 1: vulnerabilities found;
# exit 2: the vulnerability data was unreachable, so nothing was checked (scripts/audit.py).
audit: $(STAMP)
	$(PY) scripts/audit.py

bench: $(STAMP)
	$(PY) bench/engine.py $(BENCH_ARGS)

bench-service: system-deps $(STAMP)
	$(PY) bench/service.py $(BENCH_ARGS)

# Issue 20's memory and early-refusal figures on real processes (docs/reliability.md, "Resource faults").
bench-resources: system-deps $(STAMP)
	$(PY) bench/resources.py

# The style target cache: cold vs cached targets at 256/512/1024 px and Print, its hit rate over six
# jobs on three paintings, and a Print job's first step (docs/performance.md, "Style targets").
bench-targets: $(STAMP)
	$(PY) bench/targets.py $(BENCH_ARGS)

# Issue 24's proxy of quality: each style loss's feature distributions against the style's
# (docs/performance.md, section 8). BENCH_ARGS="--weights imagenet" reruns it with ImageNet's weights.
bench-style-quality: $(STAMP)
	$(PY) bench/style_quality.py --style-weight 10000 $(BENCH_ARGS)

# Video (docs/video.md): warping error of independent frames, warm start, warm start + temporal loss.
bench-video: $(STAMP)
	$(PY) bench/video.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
