# callworker: the two commands are `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo test check lint types pytest bench clean

bootstrap:
	scripts/bootstrap

demo: bootstrap
	$(BIN)/callworker demo

test: bootstrap
	$(MAKE) check

check: lint types pytest

lint:
	$(BIN)/ruff check worker tasks gotosim tests bench
	$(BIN)/ruff format --check worker tasks gotosim tests bench

types:
	$(BIN)/mypy

pytest:
	scripts/pytest

bench: bootstrap
	$(BIN)/python -m bench.media_calls

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
