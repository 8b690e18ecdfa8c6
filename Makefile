# ec2-build: every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV          := .venv
PY            := $(VENV)/bin/python
CHECKOV_VENV  := .venv-checkov
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
# The real Lambda binaries driven by the local stack and the end-to-end tests.
LAMBDA_BIN_DIR := $(CARGO_TARGET_DIR)/debug

.PHONY: help
help:
	@echo "make demo      run the product end to end on the local AWS stack"
	@echo "make test      unit tests, static checks and end-to-end tests"
	@echo "make lint      static checks of the ASL, SSM document, PowerShell and templates"
	@echo "make bench     benchmarks, written to BENCHMARKS.md (BENCH_ARGS=\"--only faults\": one section, not written there)"
	@echo "make package   arm64 Lambda zips and the packaged template (needs no AWS account)"
	@echo "make deploy    deploy to AWS with your credentials"
	@echo "make deploy-windows-ami   deploy the Windows build AMI pipeline (START_BAKE=1: bake now)"
	@echo "make smoke-aws live smoke test on AWS after make deploy (Linux, Windows docker, Windows conda builds)"

# ---------------------------------------------------------------- set-up
$(VENV)/.installed: tests/localstack/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==24.3.1
	$(VENV)/bin/pip install --quiet -r tests/localstack/requirements.txt
	touch $@

$(CHECKOV_VENV)/.installed: tests/lint/requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r tests/lint/requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

.PHONY: setup
setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed build

.PHONY: build
# All targets at once: the tests' dev-dependency features (the SDKs' test-util) are then unified
# with the binaries', so the AWS SDK crates compile once for `make test` instead of twice.
build:
	cargo build --workspace --all-targets

# ---------------------------------------------------------------- tests
# The pytest suites `make test` runs (tests/bench is `make bench`, not a test suite).
PYTEST_SUITES := tests/localstack tests/flow tests/template tests/lint tests/e2e tests/aws

.PHONY: test test-unit test-e2e lint
# Binaries first: `cargo test` then reuses their dependencies, and the e2e suites need them.
test: build test-unit lint test-e2e

test-unit:
	cargo test --workspace

lint: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed
	npx --no-install asl-validator --json-path statemachine/build.asl.json
	npx --no-install asl-validator --json-path statemachine/prepare.asl.json
	$(PY) tests/lint/check_document.py
	$(PY) tests/lint/check_powershell.py
	$(VENV)/bin/cfn-lint cloudformation/*.yml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -d cloudformation

# The local-stack, flow, template, lint and end-to-end suites (the e2e tests run the real binaries;
# the lint tests need node_modules).
test-e2e: $(VENV)/.installed node_modules/.installed build
	LAMBDA_BIN_DIR=$(LAMBDA_BIN_DIR) $(PY) -m pytest -q -rfEsx -p no:cacheprovider $(PYTEST_SUITES)

# ---------------------------------------------------------------- demo and bench
.PHONY: demo bench
# Exit 0 when the product behaved: FAIL=1 runs a failing build and exits 0 when the failure is reported correctly.
demo: $(VENV)/.installed build
	LAMBDA_BIN_DIR=$(LAMBDA_BIN_DIR) $(PY) -m tests.localstack.demo $(if $(FAIL),--fail,)

# Full run ≈ 10–15 min on 2 cores, release build not counted (it includes a 600 s build); `make bench BENCH_ARGS=--quick` for development.
# The functions are built on their own, as `make package` builds them: a workspace build would give
# their SDK crates the CLI's features too (CloudWatch Logs' event streams), which the deployed
# binaries do not have.
bench: $(VENV)/.installed
	cargo build --release -p ec2-build-lambdas -p ec2-build-bench-baseline --bins
	cargo build --release -p ec2-build-cli --bins
	LAMBDA_BIN_DIR=$(CARGO_TARGET_DIR)/release $(PY) -m tests.bench $(BENCH_ARGS)

# ---------------------------------------------------------------- packaging and deployment
.PHONY: package deploy deploy-windows-ami smoke-aws
package: $(VENV)/.installed
	cloudformation/package.sh

deploy: package
	cloudformation/deploy.sh

# The Image Builder pipeline of the Windows build AMI; versions derived from its content (README, Windows builds).
deploy-windows-ami: $(VENV)/.installed
	START_BAKE=$(START_BAKE) cloudformation/deploy-windows-ami.sh

# Three real builds through real pipelines (tests/aws/test_smoke.py): needs your credentials, the
# deployed stack and the example stack (cloudformation/README.md); up to two hours, and EC2 costs.
EC2BUILD_SMOKE_EXAMPLE_STACK ?= ec2-build-example
smoke-aws: $(VENV)/.installed
	EC2BUILD_SMOKE_EXAMPLE_STACK=$(EC2BUILD_SMOKE_EXAMPLE_STACK) $(PY) -m pytest -q -rs -p no:cacheprovider tests/aws -k test_build_on_aws
