# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo lint test model serve clean

$(STAMP): pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch is pinned to the CPU build on this disk; a plain `torch` pulls a multi-GB CUDA build.
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c $(VENV)/torch-constraint.txt -e '.[dev,lab,serve,llama]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python -m mats demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n 2 tests

# The HTTP API and web page on the embedded model: http://127.0.0.1:8000/
serve: venv
	$(BIN)/python -m mats serve

# Rebuild the embedded models (SoundWorld full, mini-CLAP, mini-LM, MATS-mini, MATS-Audio-mini).
model: venv
	$(BIN)/python -m mats_lab.build_mini --ship-to src/mats/assets $(if $(wildcard ../shared/data),--corpus-data ../shared/data)

clean:
	rm -rf $(VENV) .pytest_cache
