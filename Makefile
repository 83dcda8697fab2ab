# rlm developer targets. `make setup` prepares a fresh Debian/Ubuntu machine (as root);
# the other targets assume the package is installed (`pip install -e '.[test]'`).
PYTHON ?= python3
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
VERSION := $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
IMAGE ?= localhost/rlm-kernel:$(VERSION)
BASE_IMAGE ?= python:3.12-slim
LOCAL_BASE ?= localhost/rlm-base:bookworm
HOST_CA := /etc/ssl/certs/ca-certificates.crt
# Podman can mount the host's CA bundle into build steps (pip behind a TLS proxy);
# the bundle is never copied into the image.
CERT_ARGS := $(if $(and $(findstring podman,$(ENGINE)),$(wildcard $(HOST_CA))),-v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg PIP_CERT=$(HOST_CA))

.PHONY: setup install image base-image test test-rootless bench lint

setup:
	bash scripts/setup-host.sh

install:
	$(PYTHON) -m pip install -e '.[test]'

image:
	@test -n "$(ENGINE)" || { echo "no container engine: install podman (apt-get install podman runc)"; exit 2; }
	$(ENGINE) build -f Containerfile -t $(IMAGE) \
	    --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	    --build-arg RUNTIME_HASH=$$($(PYTHON) -c 'from rlm.kernel_image import runtime_hash; print(runtime_hash())') \
	    $(CERT_ARGS) .

base-image:
	bash scripts/build-base-image.sh $(LOCAL_BASE)

test:
	$(PYTHON) -m pytest
	@if [ "$$(id -u)" = 0 ] && [ -z "$$RLM_SKIP_ROOTLESS" ]; then bash scripts/test-rootless.sh; \
	 else echo "rootless part skipped (needs root to create a test user)"; fi

test-rootless:
	bash scripts/test-rootless.sh

bench:
	$(PYTHON) -m rlm.bench

lint:
	ruff check .
	ruff format --check .
