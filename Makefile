# The two commands of the README: `make run` and `make test`.
.PHONY: run test bench lint demo-check

run:
	scripts/setup.sh run
	.venv/bin/tslcd-monitor run

test:
	scripts/setup.sh test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

bench:
	scripts/setup.sh test
	.venv/bin/python -m bench

lint:
	.venv/bin/ruff check .
