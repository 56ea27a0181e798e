# bounce-milter. `make check` is the one test command (CI runs it through
# .ci/run); it installs what the integration tests need when it is missing.

GO        ?= go
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 10s
BIN       := bin/bounce-milter
export BM_REQUIRE_SERVERS ?= 1

.PHONY: all build check deps fmt-check vet staticcheck test fuzz-smoke integration bench clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/bounce-milter

check: deps fmt-check vet staticcheck test fuzz-smoke integration
	@echo "make check: all passed"

# Debian packages for the real-server tests: Postfix, swaks, Redis.
deps:
	@bash test/deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt wants to reformat:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

test:
	$(GO) test -race -count=1 ./...

# A short run of every fuzz target, on top of their seed corpora (which
# `go test` already runs).
fuzz-smoke:
	@bash test/fuzz-smoke.sh $(FUZZTIME)

# End-to-end tests against real Postfix (test/t-*/run.sh).
integration: build
	@bash test/run-all.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
