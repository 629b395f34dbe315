# maas — the two commands a new user needs are `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MAAS_LOG_LEVEL ?= warning

.PHONY: quickstart test lint proto bench clean venv fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,serve,dev,bench]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/maas train examples/digits-cnn.yaml
	$(BIN)/maas models show digits-cnn@latest
	$(BIN)/python examples/quickstart_demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy src/maas
	$(BIN)/lint-imports

# The messages are built in a private descriptor pool (the sed line): tritonclient registers the
# same `inference.*` names in the default pool, and both must load in one process.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I src --python_out=src --pyi_out=src --grpc_python_out=src src/maas/protocol/proto/grpc_service.proto
	sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' src/maas/protocol/proto/grpc_service_pb2.py

# The bench extra (installed with the venv) holds the reference server's FastAPI and uvicorn.
# BENCH_ARGS for a shorter run, e.g. BENCH_ARGS="--models mlp --window-ms 1000 --workers 1".
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# About five minutes of fuzzing: the REST API from its OpenAPI document against a live server,
# and the tensor decoders, with many more (and fresh random) examples than `make test` runs.
FUZZ_EXAMPLES ?= 300  # about five minutes on 2 cores
fuzz: $(STAMP)
	MAAS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/serving/hardening

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
