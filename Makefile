# satrain build. `make deps` once on a fresh Debian 12 machine, then `make`, `make test`, `make run`.
SHELL := /bin/bash
BUILD       ?= build
GO          ?= go
TORCH_CUDA  ?= 0
CMAKE_JOBS  ?= $(shell nproc)
# libgloo-dev: Gloo's headers, which c10d's Gloo header needs and the torch wheel does not ship.
APT_PACKAGES := libgloo-dev libhdf5-dev cmake g++ pkg-config prometheus python3-venv
# The project's Python: Debian's python3 in a venv with PyTorch 2.11.0 (its libtorch is what the shim builds
# against), numpy, h5py and tensorboard, every wheel pinned by sha256 in the lock file.
VENV        ?= .venv
PYTHON      := $(VENV)/bin/python
LOCK        := third_party/requirements.lock
VENV_STAMP  := $(VENV)/.satrain-lock
# The shim builds against the venv's libtorch unless LIBTORCH (an unpacked libtorch) or another PYTHON (a
# PyTorch install elsewhere, as in Dockerfile.cuda) is given; only the venv's is rebuilt when the lock changes.
SHIM_TORCH  := $(if $(LIBTORCH),,$(if $(filter $(VENV)/bin/python,$(PYTHON)),$(VENV_STAMP)))
SHIM_SRC    := $(wildcard torch/csrc/*.cpp torch/csrc/*.h) torch/csrc/CMakeLists.txt
# The binary finds libsatorch.so beside itself ($ORIGIN) or in the build folder.
GO_LDFLAGS  := -extldflags=-Wl,-rpath,$$ORIGIN
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all deps venv lock shim shim-cuda satrain test run bench bundle device-dry-run clean

all: shim satrain

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [[ -n "$$missing" ]]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [[ $$(id -u) -ne 0 ]] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi
	$(MAKE) --no-print-directory venv
	$(GO) mod download

# The venv is (re)installed when the lock file changes: the stamp holds the lock's sha256. About 2.6 GB of
# wheels (torch and the NVIDIA libraries it depends on); pip refuses any file whose hash differs.
venv:
	@sum=$$(sha256sum $(LOCK) | cut -d' ' -f1); \
	if [[ -x $(PYTHON) && "$$(cat $(VENV_STAMP) 2>/dev/null)" == "$$sum" ]]; then echo "deps: $(VENV) matches $(LOCK)"; exit 0; fi; \
	echo "deps: installing $(LOCK) into $(VENV)"; \
	/usr/bin/python3 -m venv $(VENV) && \
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
	  --index-url https://pypi.org/simple -r $(LOCK) && \
	echo "$$sum" > $(VENV_STAMP)

# Rewrites both lock files from PyPI (Linux x86_64 only; third_party/lock.sh says why): the venv's for Debian's
# Python 3.11, and the container's for Ubuntu 24.04's Python 3.12. Commit the result.
lock:
	./third_party/lock.sh 3.11 third_party/requirements.in $(LOCK)
	./third_party/lock.sh 3.12 docker/torch-requirements.in docker/torch-requirements.txt

# TORCH_CUDA=1 adds the CUDA code (streams, CUDA seeds and memory statistics, NCCL), compiled against the
# wheel's libtorch_cuda and the CUDA headers of the NVIDIA wheels.
$(BUILD)/libsatorch.so: $(SHIM_SRC) $(SHIM_TORCH)
	@export PYTHON="$(abspath $(PYTHON))"; root="$$(./third_party/libtorch.sh)" || exit 1; \
	cuda=OFF; cudaroot=""; \
	if [[ "$(TORCH_CUDA)" == 1 ]]; then cuda=ON; cudaroot="$$(./third_party/libtorch.sh --cuda-root)"; fi; \
	cmake -S torch/csrc -B $(BUILD)/shim -DSATORCH_TORCH_ROOT="$$root" -DSATORCH_CUDA=$$cuda \
	  -DSATORCH_CUDA_ROOT="$$cudaroot" -DSATORCH_OUTPUT_DIR="$(abspath $(BUILD))" -DCMAKE_BUILD_TYPE=Release >/dev/null && \
	echo "shim: building $(BUILD)/libsatorch.so against $$root (CUDA $$cuda)" && \
	if ! out=$$(cmake --build $(BUILD)/shim -j $(CMAKE_JOBS) 2>&1); then echo "$$out" >&2; exit 1; fi

$(VENV_STAMP):
	@echo "no $(VENV): run make deps" >&2; exit 1

shim: $(BUILD)/libsatorch.so

# The CUDA build, compiled and linked on a machine without a GPU (what CI checks): build-cuda/libsatorch.so,
# and the same Go binary beside it, which must load it and report the CUDA build with no device.
shim-cuda: satrain
	$(MAKE) --no-print-directory shim BUILD=build-cuda TORCH_CUDA=1
	cp $(BUILD)/satrain build-cuda/satrain
	./scripts/check_cuda_build.sh build-cuda

satrain: shim
	CGO_ENABLED=1 $(GO) build -ldflags '$(GO_LDFLAGS) -X main.version=$(VERSION)' -o $(BUILD)/satrain ./bin/satrain

# The test command of the README and CI: Python reference tests, a short
# seeded fuzz run of every fuzz target, then the whole Go suite.
test: all shim-cuda
	./scripts/check_links.sh $(BUILD)/satrain
	$(PYTHON) -m unittest discover -s python -q
	@if [[ -x .ci/fuzz.sh ]]; then .ci/fuzz.sh; fi
	$(GO) test -count=1 -timeout 25m ./...

# The README's main job: a synthetic panel and a short selection-aware run of
# the tiny model on the CPU (about a minute).
run: all
	./$(BUILD)/satrain demo --dir ./demo

bench: shim
	./bench/model_cpu.sh
	./bench/loader_bench.sh

# What the GPU machine runs besides the tree (bench/device/run.sh): the binary, the CUDA shim, the torch test
# binary, HDF5's libraries and trained FP8 weights (made once, about 6 minutes of CPU).
bundle: all shim-cuda
	./scripts/bundle.sh

# The device run's script on this CPU with the same bundle (tiny preset, CUDA-only steps skipped): catches a typo
# before the GPU's minutes are spent. About 4 minutes on the 2-core VM.
device-dry-run: bundle
	OUT=$${OUT:-/tmp/satrain-dry-run} bash bench/device/run.sh --cpu

clean:
	rm -rf $(BUILD) build-cuda bundle demo
