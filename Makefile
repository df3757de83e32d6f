# dindops: build, test and demo targets. See README.md.
GO      ?= go
BIN     := bin/dindops
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FLEET   := fixtures/fleet

.PHONY: build deps test test-unit test-fleet fleet-up fleet-down demo bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dindops

# All tests: what they need installed (Debian packages, as root), the fast
# unit tests, then the fleet tests on a local fleet.
test: deps test-unit test-fleet

deps:
	$(FLEET)/up.sh --packages-only

test-unit:
	$(GO) vet ./...
	$(GO) test ./...

# Starts the local fleet, runs the end-to-end tests against it, removes it.
test-fleet: build
	$(FLEET)/run-tests.sh

fleet-up: build
	$(FLEET)/up.sh

fleet-down:
	$(FLEET)/down.sh

# The main job on the local fleet: plan, apply, apply again (0 changed).
demo: build
	$(FLEET)/demo.sh

# dindops against Ansible (defaults and best settings) and the floor, on local
# fleets (bench/, see docs/benchmarks.md): long, about 6 hours on 2 cores with no
# flags (-sizes, -tools and -append run it in parts; see docs/benchmarks.md).
# Needs root; installs Ansible with apt. Writes docs/benchmarks.md and .png.
# A quick look: make bench BENCH_FLAGS="-sizes 1,5 -reps 1 -docker-hosts 0 -no-doc"
BENCH_FLAGS ?=
bench: build
	cd bench && $(GO) run ./cmd/bench -repo .. $(BENCH_FLAGS)

clean:
	rm -rf bin
