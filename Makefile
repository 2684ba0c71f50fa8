# The two commands of the README: `make run` and `make test`.
.PHONY: run test test-fast durations bench lint demo-check

run:
	scripts/setup.sh run
	.venv/bin/tslcd-monitor run

# Six workers on two cores: most tests wait on brokers, browsers and namespaces, not CPU (a
# whole run uses about 1.3 cores). --dist loadgroup: a file's tests stay on one worker (module
# fixtures, fixed ports), but a lab test that builds its own namespaces goes to any worker
# (tests/conftest.py groups them; pytest stays below 9.2, which breaks the grouping).
test:
	scripts/setup.sh test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q -n 6 --dist loadgroup

# The unit lane only (no broker, browser or namespace); the goal is under a minute.
test-fast:
	scripts/setup.sh test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q -n 2 tests/unit

# tests/durations.json, the seconds of each test of a second or more: the suite starts the
# longest first (tests/conftest.py), so the last test to start on a worker is a short one.
# Rewrite it after adding or changing long tests (this runs the whole suite).
durations:
	scripts/setup.sh test
	.venv/bin/python -m pytest -q -n 6 --dist loadgroup --store-durations

bench:
	scripts/setup.sh test
	.venv/bin/python -m bench

lint:
	.venv/bin/ruff check .
