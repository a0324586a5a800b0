# Two commands are the whole set-up: `make search` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-ray.txt | cksum | cut -d' ' -f1)

.PHONY: setup search supernet test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt requirements-ray.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-ray.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# The default supernet for the embedded dataset (digits, 32 px), trained once and cached in supernets/weights/.
supernet: $(STAMP)
	$(PY) -m supernets.default

# The embedded default search (top-1 against MACs on digits), with a budget that keeps `make search` under ten
# minutes from a fresh clone on a 2-core machine: 40 + 6 x 8 evaluations. `python msunas.py` alone runs
# upstream's budget (100 + 15 x 8).
search: supernet
	$(PY) msunas.py --n_doe 40 --iterations 6

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist loadscope -q

bench: $(STAMP)
	$(PY) -m bench.supernet

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
