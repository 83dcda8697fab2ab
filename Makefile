# rlm developer targets. `make setup` prepares a fresh Debian/Ubuntu machine (as root);
# the other targets assume the package is installed (`pip install -e '.[test]'`).
PYTHON ?= python3
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
VERSION := $(shell $(PYTHON) -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
IMAGE ?= localhost/rlm-kernel:$(VERSION)
# Empty: rlm image build picks LOCAL_BASE if present, else python:3.12-slim.
BASE_IMAGE ?=
LOCAL_BASE ?= localhost/rlm-base:bookworm

.PHONY: setup install image base-image test test-rootless test-security bench bench-ray replay lint

setup:
	bash scripts/setup-host.sh

install:
	$(PYTHON) -m pip install -e '.[test]'

image:
	@test -n "$(ENGINE)" || { echo "no container engine: install podman (apt-get install podman runc)"; exit 2; }
	$(PYTHON) -m rlm.cli image build --engine $(ENGINE) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) --tag $(IMAGE)

base-image:
	bash scripts/build-base-image.sh $(LOCAL_BASE)

test:
	$(PYTHON) -m pytest
	@if [ "$$(id -u)" = 0 ] && [ -z "$$RLM_SKIP_ROOTLESS" ]; then bash scripts/test-rootless.sh; \
	 else echo "rootless part skipped (needs root to create a test user)"; fi

test-rootless:
	bash scripts/test-rootless.sh

# The adversarial suite alone (README "Threats and defences"); `make test` runs it too.
test-security:
	$(PYTHON) -m pytest tests/security -q
	@if [ "$$(id -u)" = 0 ] && [ -z "$$RLM_SKIP_ROOTLESS" ]; then bash scripts/test-rootless.sh tests/security; \
	 else echo "rootless part skipped (needs root to create a test user)"; fi

bench:
	$(PYTHON) -m rlm.bench

# Ray executor vs local, and throughput at 1 and 2 nodes (needs pip install '.[ray]').
bench-ray:
	$(PYTHON) -m rlm.bench_ray

# The dialect corpus (tests/dialects/corpus) through the real loop: the share of blocks
# that run and of runs that reach an answer. RUNTIME=local skips the containers.
RUNTIME ?= container
replay:
	$(PYTHON) -m tests.dialects.replay --runtime $(RUNTIME)

lint:
	ruff check .
	ruff format --check .

# --- evaluation (README "Evaluation") --------------------------------------------------
# Keys come from the environment (e.g. ANTHROPIC_API_KEY). Each target keeps its results
# in its own JSONL, so a killed or repeated run resumes where it stopped.
BACKEND ?= anthropic
MODEL ?=
SUB_MODEL ?=
BASE_URL ?=
N ?= 5
LENGTHS ?= 2^13..2^17
OUT ?=
# EXECUTOR=ray runs the tasks on the Ray cluster at RAY_ADDRESS (default: auto), by
# default as many at once as the cluster declares sandboxes.
EXECUTOR ?= local
RAY_ADDRESS ?=
CONCURRENCY ?= $(if $(filter ray,$(EXECUTOR)),,2)
EVAL_ARGS = --backend $(BACKEND) $(if $(MODEL),--model '$(MODEL)') \
	$(if $(SUB_MODEL),--sub-model '$(SUB_MODEL)') $(if $(BASE_URL),--base-url '$(BASE_URL)') \
	-n $(N) --lengths '$(LENGTHS)' \
	$(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) --executor $(EXECUTOR) \
	$(if $(RAY_ADDRESS),--ray-address '$(RAY_ADDRESS)')
# Default results file: per backend, model and task set (a file holds one configuration).
eval_out = $(or $(OUT),eval-results/$(BACKEND)$(if $(MODEL),-$(subst /,_,$(MODEL)))-$(1).jsonl)

.PHONY: eval eval-sniah eval-oolong eval-pairs

eval-sniah:
	$(PYTHON) -m rlm.cli eval --task sniah $(EVAL_ARGS) --out '$(call eval_out,sniah)'

eval-oolong:
	$(PYTHON) -m rlm.cli eval --task oolong $(EVAL_ARGS) --out '$(call eval_out,oolong)'

eval-pairs:
	$(PYTHON) -m rlm.cli eval --task pairs $(EVAL_ARGS) --out '$(call eval_out,pairs)'

eval:
	$(PYTHON) -m rlm.cli eval $(EVAL_ARGS) --out '$(call eval_out,all)'
