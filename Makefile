# moeforge: `make demo` and `make test` do all the set-up (Debian packages, build) themselves.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
SHARED ?= ../shared
DEMO_MODEL ?= models/default

.PHONY: deps build demo test test-all bench fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Main job on the built-in default model (see README).
demo: build
	$(BUILD)/bin/moeforge inspect $(DEMO_MODEL)
	@echo "--- code"; $(BUILD)/bin/moeforge generate -m $(DEMO_MODEL) -p 'def read_config(path):'$$'\n' -n 48 --temp 0
	@echo "--- math"; $(BUILD)/bin/moeforge generate -m $(DEMO_MODEL) -p 'Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?'$$'\n''Answer:' -n 48 --temp 0
	@echo "--- prose"; $(BUILD)/bin/moeforge generate -m $(DEMO_MODEL) -p 'And it came to pass, when the' -n 48 --temp 0
	@echo "--- reference"; $(BUILD)/bin/moeforge generate -m $(DEMO_MODEL) -p 'The module provides' -n 48 --temp 0
	$(BUILD)/bin/moeforge bench -m $(DEMO_MODEL) -p 64 -n 32 -r 3
	@echo "--- domain experts: calibrate, build-moe, route (small committed texts; see docs/moe.md)"
	@mkdir -p $(BUILD)/demo
	$(BUILD)/bin/moeforge calibrate -m $(DEMO_MODEL) $(foreach d,code math prose reference,--domain $(d)=tests/data/moe/$(d).txt) \
	  --tokens-per-domain 4096 --sample-tokens 32 --micro-clusters 4 -o $(BUILD)/demo/stats.gguf
	$(BUILD)/bin/moeforge build-moe -m $(DEMO_MODEL) -s $(BUILD)/demo/stats.gguf --density 0.5 -o $(BUILD)/demo/default.moe
	$(BUILD)/bin/moeforge route --moe $(BUILD)/demo/default.moe --file tests/data/moe/math_test.txt
	@echo "--- math, routed"; $(BUILD)/bin/moeforge generate -m $(BUILD)/demo/default.moe -p 'Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?'$$'\n''Answer:' -n 48 --temp 0
	$(BUILD)/bin/moeforge bench -m $(BUILD)/demo/default.moe --domain dense -p 64 -n 32 -r 3
	$(BUILD)/bin/moeforge bench -m $(BUILD)/demo/default.moe --domain math -p 64 -n 32 -r 3

# Everything that finishes in a few minutes on 2 cores (all labels but `slow`).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bin/bench_ops --benchmark_min_time=0.2

clean:
	rm -rf $(BUILD)
