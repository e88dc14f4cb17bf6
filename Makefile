# The two commands a new machine needs (see README.rst):
#   make demo   installs the package and starts examples/app.py behind the basic connector
#   make test   installs every test server and dependency, then runs the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := examples/.demo-state

.PHONY: demo test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

demo: $(PY)
	$(PY) -m pip install --quiet -e .
	mkdir -p $(STATE) && chmod 700 $(STATE)
	test -s $(STATE)/secret-key || $(PY) -c "import secrets; print(secrets.token_urlsafe(48))" > $(STATE)/secret-key
	chmod 600 $(STATE)/secret-key
	cd examples && \
	DASH_AUTH_CONNECTOR=basic \
	DASH_AUTH_USERS_FILE=demo-users.json \
	DASH_AUTH_ALLOWED_GROUPS=analysts \
	DASH_AUTH_SECRET_KEY_FILE=.demo-state/secret-key \
	DASH_AUTH_SESSION_STORE=sqlite:///.demo-state/sessions.sqlite3 \
	../$(PY) app.py

test: $(PY)
	scripts/install-test-servers
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m pytest $(PYTEST_ARGS)
