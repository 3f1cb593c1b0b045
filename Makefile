# Bệnh Án — the two set-up commands, plus a few for developers.
# Needs: Python >= 3.11 with venv, make. Everything else is installed here.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install serve lint fmt bench messages browser tools clean

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required" if sys.version_info < (3, 11) else 0)'
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV) || { \
	  echo "Cannot create a virtual environment: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

## make demo: install, migrate, seed the demo clinic, and run it on http://127.0.0.1:8000
demo: install
	$(BIN)/benhan migrate --no-input
	$(BIN)/benhan demo
	$(BIN)/benhan serve

## make test: install and run the whole suite on SQLite (browser tests need chromium)
test: install browser tools
	$(BIN)/pytest -n 2 --dist loadfile

# Browser tests use Debian's chromium. Install it when we can (root on Debian);
# otherwise the browser tests skip themselves with a notice.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests…"; \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "NOTICE: could not install chromium; browser tests will be skipped"; \
	else echo "NOTICE: chromium is not installed (apt-get install chromium); browser tests will be skipped"; fi

# Independent validators and a software token for the signing tests: poppler's
# pdfsig, NSS's certutil, SoftHSM2. Installed when we can (root on Debian);
# otherwise the tests that need them skip themselves with a notice.
TOOLS := pdfsig:poppler-utils certutil:libnss3-tools softhsm2-util:softhsm2
tools:
	@missing=""; for t in $(TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing$$missing for the signing tests…"; \
	  (apt-get install -y -q $$missing >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1)) || \
	  echo "NOTICE: could not install$$missing; the tests that need them will be skipped"; \
	else echo "NOTICE: missing$$missing (apt-get install$$missing); the tests that need them will be skipped"; fi

serve: install
	$(BIN)/benhan serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make messages: refresh the translation catalogues after changing strings
messages: install
	$(BIN)/benhan makemessages -l vi -l en --no-obsolete --ignore=.venv --ignore=var --ignore=bench --ignore=tests
	$(BIN)/benhan compilemessages --ignore=.venv

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
