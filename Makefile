# PLD on ROS 2. Quick start: `make demo` (the main job on the simulated robot) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV_PY := .venv/bin/python
# Every command below runs inside the workspace environment (venv + install space + LOCALHOST discovery).
IN_ENV := . ./env.sh &&

.PHONY: help setup demo test test-all lint format doctor lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## install everything (Debian libs, .venv, colcon build, env.sh); fast when nothing changed
	@bash scripts/setup.sh

demo: setup  ## run the main job on the simulated robot (results in runs/)
	@$(IN_ENV) pld demo

test: setup lint  ## lint + all tests except hardware-only ones
	@$(IN_ENV) python -m pytest

lint: setup  ## ruff check + ruff format --check
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: setup  ## ruff format + autofix
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

doctor: setup  ## check this machine (pld doctor)
	@$(IN_ENV) pld doctor

lock:  ## re-pin requirements.txt from requirements.in in a scratch venv
	@bash scripts/lock.sh

clean:  ## remove build outputs (keeps .venv and runs/)
	rm -rf build install log .colcon env.sh .venv/.pld-stamps/colcon
