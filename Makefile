# Each target sets up what it needs on a fresh machine: system packages, the virtualenv, Patter.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.patter-installed
BENCH_STAMP := $(VENV)/.patter-bench-installed

.PHONY: demo test lint bench system-deps

demo: $(STAMP)  ## a full phone call against the loopback fakes: no account, no key
	$(PY) -P -m patter.testing.demo

test: lint  ## lint and type check, then the test suite (fails when no test ran)
	$(VENV)/bin/pytest -q

lint: $(STAMP)  ## ruff, then mypy --strict over the package as a wheel lays it out
	$(VENV)/bin/ruff check patter processors transports tests examples benchmarks scripts
	$(PY) -P scripts/typecheck.py

bench: $(BENCH_STAMP)  ## every benchmark; writes benchmarks/results/latest.md and its charts
	$(PY) -P benchmarks/run_all.py

system-deps:
	@missing=""; \
	for tool in espeak-ng redis-server haproxy; do \
		command -v $$tool >/dev/null 2>&1 || test -x /usr/sbin/$$tool || missing="$$missing $$tool"; \
	done; \
	test -z "$$missing" || { \
		echo "installing$$missing (test speech; the cluster tests' Redis and HAProxy)"; \
		(apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null; }

$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,offline]'
	@touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,offline,bench]'
	@touch $(BENCH_STAMP)
