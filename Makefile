# baton: the two quick-start commands are `make demo` and `make test`.
SWIFT ?= swift
BIN := $(shell $(SWIFT) build --show-bin-path 2>/dev/null)

.PHONY: deps build demo test unit-test clean

deps:
	@./scripts/install-deps

build: deps
	$(SWIFT) build

# Runs baton on config/demo.toml with the test worker on 127.0.0.1:8080 (Ctrl-C stops it).
demo: build
	PATH="$(BIN):$$PATH" "$(BIN)/baton" run --config config/demo.toml

# The whole test suite: unit tests and the integration tests (real baton, real workers, loopback).
test: build
	$(SWIFT) test

unit-test: build
	$(SWIFT) test --skip IntegrationTests

clean:
	rm -rf .build
