# Two commands set everything up on a fresh machine:
#   make demo   collect demonstrations -> train -> evaluate -> one results table (outputs/demo/)
#   make test   the default (fast) test suite: tests marked `slow` are left out
# Both create .venv if needed. torch is installed first from the pinned CPU build so that pip
# never resolves a multi-GB CUDA build on its own.
# `make test-slow` runs only the slow tests (SIGKILL and resume, torchrun, fine-tuning, long
# collections); `make test-all` runs every test.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: demo test test-slow test-all setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev,ogbench,hardware,cameras,lerobot]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/robo demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m ""

clean:
	rm -rf $(VENV) data/demo outputs/demo *.egg-info
