# Modelplane: `make up` deploys stacks/local.yaml to the local Docker engine; `make test` runs the suite.
SHELL := /bin/bash
VENV := .venv/bin
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

.PHONY: bootstrap bootstrap-kubernetes bootstrap-azurite up test test-fast lint bench

bootstrap:
	@scripts/bootstrap

# The local Kubernetes control plane, a real node (kubelet, kube-proxy, containerd, registry) and the
# pulumi-kubernetes plugin: the tests and the k8s-local stack need them. It runs scripts/bootstrap
# itself, beside its Go builds.
bootstrap-kubernetes:
	@scripts/bootstrap-kubernetes

# The Azure Storage emulator the team-state tests keep a stack's state in (azblob://).
bootstrap-azurite:
	@scripts/bootstrap-azurite

up: bootstrap
	$(VENV)/modelplane up --stack local --yes --refresh
	$(VENV)/modelplane invoke --stack local --all-samples

# Two workers, a test file each at a time (module fixtures stay whole), heaviest files first
# (tests/conftest.py; xdist's own reorder would put the files with most tests first); the 25 slowest
# tests listed. (Three workers were faster, but starved the autoscaler test: issue 19 note.)
test: bootstrap-kubernetes bootstrap-azurite
	$(VENV)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# The tests that need no engine, Docker or Kubernetes (nor ruff/mypy): spec, components under mocks,
# offline plans, policies, the scoring runtime. `make test` runs them too.
test-fast: bootstrap
	$(VENV)/python -m pytest -p no:cacheprovider -m "not engine and not docker and not kubernetes and not lint"

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy modelplane components policies __main__.py bench tests

# Benchmarks (not part of `make test`): writes bench/results/ and docs/performance.md.
bench: bootstrap
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk; }
	$(VENV)/pip install -q -e ".[dev,bench]"
	$(VENV)/python bench/run.py $(BENCH_ARGS)
