# satrain build. `make deps` once on a fresh Debian 12 machine, then `make`, `make test`, `make run`.
SHELL := /bin/bash
BUILD       ?= build
GO          ?= go
TORCH_CUDA  ?= 0
CMAKE_JOBS  ?= $(shell nproc)
APT_PACKAGES := libtorch-dev libgloo-dev libhdf5-dev python3-torch python3-h5py python3-numpy cmake g++ pkg-config prometheus libopenblas0-pthread
SHIM_SRC    := $(wildcard torch/csrc/*.cpp torch/csrc/*.h) torch/csrc/CMakeLists.txt
# The binary finds libsatorch.so beside itself ($ORIGIN) or in the build folder.
GO_LDFLAGS  := -extldflags=-Wl,-rpath,$$ORIGIN
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all deps shim satrain test run bench bundle clean

all: shim satrain

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [[ -n "$$missing" ]]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [[ $$(id -u) -ne 0 ]] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi
	$(GO) mod download

$(BUILD)/libsatorch.so: $(SHIM_SRC)
	@prefix="$$(./third_party/libtorch.sh)"; \
	cuda=OFF; [[ "$(TORCH_CUDA)" == 1 ]] && cuda=ON; \
	cmake -S torch/csrc -B $(BUILD)/shim -DCMAKE_PREFIX_PATH="$$prefix" -DSATORCH_CUDA=$$cuda \
	  -DSATORCH_OUTPUT_DIR="$(abspath $(BUILD))" -DCMAKE_BUILD_TYPE=Release >/dev/null && \
	cmake --build $(BUILD)/shim -j $(CMAKE_JOBS)

shim: $(BUILD)/libsatorch.so

satrain: shim
	CGO_ENABLED=1 $(GO) build -ldflags '$(GO_LDFLAGS) -X main.version=$(VERSION)' -o $(BUILD)/satrain ./bin/satrain

# The test command of the README and CI: Python reference tests, a short
# seeded fuzz run of every fuzz target, then the whole Go suite.
test: all
	./scripts/check_links.sh $(BUILD)/satrain
	/usr/bin/python3 -m unittest discover -s python -q
	@if [[ -x .ci/fuzz.sh ]]; then .ci/fuzz.sh; fi
	$(GO) test -count=1 -timeout 25m ./...

# The README's main job: a synthetic panel and a short selection-aware run of
# the tiny model on the CPU (about a minute).
run: all
	./$(BUILD)/satrain demo --dir ./demo

bench: shim
	./bench/model_cpu.sh
	./bench/loader_bench.sh

bundle: all
	./scripts/bundle.sh

clean:
	rm -rf $(BUILD) bundle demo
