# moeforge: `make demo` and `make test` do all the set-up (Debian packages, build) themselves.
BUILD ?= build
JOBS ?= $(shell nproc)
SHARED ?= ../shared
DEMO_MODEL ?= $(SHARED)/models/stories260K/stories260K.gguf
DEMO_PROMPT ?= Once upon a time

.PHONY: deps build demo test test-all bench fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Main job on the built-in default model (see README).
demo: build
	$(BUILD)/bin/moeforge inspect $(DEMO_MODEL)
	$(BUILD)/bin/moeforge generate -m $(DEMO_MODEL) -p "$(DEMO_PROMPT)" -n 64 --temp 0
	$(BUILD)/bin/moeforge bench -m $(DEMO_MODEL) -p 64 -n 32 -r 3

# Everything that finishes in a few minutes on 2 cores (all labels but `slow`).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bin/bench_ops --benchmark_min_time=0.2

clean:
	rm -rf $(BUILD)
