# bounce-milter. `make check` is the one test command (CI runs it through
# .ci/run); it installs what the integration tests need when it is missing.

GO        ?= go
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION   := v2.45.2
MD2MAN_VERSION := v2.0.7
# The package version: a tag (v1.2.3 -> 1.2.3, v1.2.3-4-gabc -> 1.2.3+4.gabc),
# else 0.1.0+git<commit>.
ifndef VERSION
VERSION := $(shell d=$$(git describe --tags --always 2>/dev/null || echo unknown); \
	case $$d in (v[0-9]*.*|[0-9]*.[0-9]*) echo "$$d" | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/';; (*) echo "0.1.0+git$$d";; esac)
endif
DEB       := dist/bounce-milter_$(VERSION)_amd64.deb
FUZZTIME  ?= 10s
BIN       := bin/bounce-milter
export BM_REQUIRE_SERVERS ?= 1

.PHONY: all build man deb check deps fmt-check vet staticcheck test fuzz-smoke integration bench clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/bounce-milter

# The man page, from Markdown (go-md2man, pinned).
man:
	@mkdir -p dist/build
	$(GO) run github.com/cpuguy83/go-md2man/v2@$(MD2MAN_VERSION) -in packaging/man/bounce-milter.8.md -out dist/build/bounce-milter.8

# The Debian package (nfpm, pinned): dist/bounce-milter_VERSION_amd64.deb.
deb: man
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o dist/build/bounce-milter ./cmd/bounce-milter
	gzip -9nc dist/build/bounce-milter.8 > dist/build/bounce-milter.8.gz
	rm -f dist/bounce-milter_*_amd64.deb
	VERSION='$(VERSION)' $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) package \
		--config packaging/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

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

# The patched go-milter copy is a nested module: ./... does not reach it.
# Upstream's own client tests race under -race (ClientSession.Close, also in
# v0.10.2 as released), so the copy runs without it.
test:
	$(GO) test -race -count=1 ./...
	cd third_party/go-milter && $(GO) test -count=1 ./...

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
	rm -rf bin dist
