# Two commands are the whole set-up: `make search` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: setup search supernet test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# The default supernet for the embedded dataset (digits, 32 px), trained once and cached in supernets/weights/.
supernet: $(STAMP)
	$(PY) -m supernets.default

search: supernet
	$(PY) msunas.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) -m bench.supernet

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
