# attune developer targets. `make help` lists them.
PY ?= .venv/bin/python

.PHONY: help setup lock serve test test-fast lint doctest bench simulate example kafka-start kafka-stop

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup:  ## create .venv and install attune with its dev tools and the sim extra
	bash scripts/setup.sh

lock:  ## regenerate requirements.lock (pinned, hashed) from pyproject.toml; needs pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" pip-compile -q --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-find-links --extra dev --extra sim -o requirements.lock \
		pyproject.toml scripts/build-requirements.in

serve: setup  ## run attune on the embedded default (SQLite, no services)
	.venv/bin/attune serve

test: setup  ## lint, doctests, then the full suite with a real Kafka broker (what CI runs)
	bash scripts/test.sh

test-fast: setup  ## unit tests only, no broker
	$(PY) -m pytest -q -m "not kafka and not slow"

lint:  ## ruff (lint and format) and mypy
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy bandit collab streaming api simulations examples

doctest:  ## the docstring examples of the five packages
	$(PY) -m pytest -q --doctest-modules bandit collab streaming api simulations

bench:  ## core benchmark, numbers side by side with the NumPy reference
	$(PY) benchmarks/bench_core.py

simulate:  ## the default scenario, all policies
	.venv/bin/attune simulate --scenario default --out out/simulate

example:  ## the example chat loop (examples/chat_loop.py) against a temporary attune serve
	$(PY) examples/chat_loop.py

kafka-start:  ## start the local single-node Kafka broker
	bash scripts/kafka.sh start

kafka-stop:  ## stop it
	bash scripts/kafka.sh stop
