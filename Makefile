# Two commands on a fresh machine: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint debs fonts bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed fonts
	$(VENV)/bin/notifier demo

# PDF letters (WeasyPrint) need Pango and a CJK font: Debian's Noto CJK, installed when missing.
fonts:
	@missing=""; \
	[ -d /usr/share/fonts/opentype/noto ] || missing="$$missing fonts-noto-cjk"; \
	ldconfig -p | grep -q libpangoft2-1.0 || missing="$$missing libpangoft2-1.0-0"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for PDF letters:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# Debian packages the tests use: PostgreSQL (the tests start their own throwaway server), Chromium
# and its driver (browser tests of the console; nothing downloads a browser), CJK fonts.
DEBS := postgresql chromium chromium-driver fonts-noto-cjk libpangoft2-1.0-0
debs: fonts
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	[ -d /usr/share/fonts/opentype/noto ] || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the tests:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# Static checks first: ruff (pyflakes, import order, bugbear, line length) and mypy --strict.
lint: $(VENV)/.installed-test
	$(PY) -m ruff check notifier tests bench
	$(PY) -m ruff format --check notifier tests bench
	$(PY) -m mypy

test: $(VENV)/.installed-test debs lint
	$(PY) -m pytest -q

bench: $(VENV)/.installed-test
	$(PY) bench/pipeline.py --residents 100000

clean:
	rm -rf $(VENV) demo .pytest_cache
