# bounce-milter. `make check` is the one test command (CI runs it through
# .ci/run); it installs what the integration tests need when it is missing.

GO        ?= go
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION   := v2.45.2
MD2MAN_VERSION := v2.0.7
# The package version (packaging/version.sh: v1.2.3 -> 1.2.3, three commits
# later 1.2.3+3.gabc1234, before the first tag 0.1.0~git<count>.g<hash>).
ifndef VERSION
VERSION := $(shell packaging/version.sh)
endif
ifndef COMMIT
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
# Reproducible packages: every time stamp inside them is the commit's.
ifndef SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
endif
export SOURCE_DATE_EPOCH
# The packages' Maintainer (and the changelog's signer): set it for your
# own builds, e.g. make deb MAINTAINER='Jane Doe <jane@example.org>'.
MAINTAINER ?= bounce-milter developers <bounce-milter@users.noreply.github.com>
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DEB       := dist/bounce-milter_$(VERSION)_amd64.deb
RPM       := dist/bounce-milter-$(VERSION)-1.x86_64.rpm
NFPM      := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
DOCGEN    := $(GO) run -C packaging/docgen .
FUZZTIME  ?= 5s
BIN       := bin/bounce-milter
export BM_REQUIRE_SERVERS ?= 1

.PHONY: all build man pkg-files deb rpm check deps fmt-check vet staticcheck test fuzz-smoke integration chaos bench clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/bounce-milter

# The man page, from Markdown (go-md2man, pinned).
man:
	@mkdir -p dist/build
	$(GO) run github.com/cpuguy83/go-md2man/v2@$(MD2MAN_VERSION) -in packaging/man/bounce-milter.8.md -out dist/build/bounce-milter.8

# What both packages carry besides the source files: the binary (static,
# no build paths, no VCS stamp: the version and commit come from -X), the
# man page, the DEP-5 copyright file with the licence of every Go module
# linked in, and the Debian-format changelog from CHANGELOG.md. gzip -n
# and SOURCE_DATE_EPOCH (nfpm) keep them reproducible.
pkg-files: man
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -buildvcs=false -ldflags "-s -w $(LDFLAGS)" -o dist/build/bounce-milter ./cmd/bounce-milter
	gzip -9nc dist/build/bounce-milter.8 > dist/build/bounce-milter.8.gz
	$(DOCGEN) copyright -root "$(CURDIR)" -o "$(CURDIR)/dist/build/copyright"
	$(DOCGEN) changelog -in "$(CURDIR)/CHANGELOG.md" -version '$(VERSION)' -date '$(SOURCE_DATE_EPOCH)' \
		-maintainer '$(MAINTAINER)' -o "$(CURDIR)/dist/build/changelog"
	gzip -9nc dist/build/changelog > dist/build/changelog.gz

# The Debian package (nfpm, pinned): dist/bounce-milter_VERSION_amd64.deb.
deb: pkg-files
	rm -f dist/bounce-milter_*_amd64.deb
	VERSION='$(VERSION)' MAINTAINER='$(MAINTAINER)' $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

# The RPM for RHEL, AlmaLinux, Rocky Linux: dist/bounce-milter-VERSION-1.x86_64.rpm.
rpm: pkg-files
	rm -f dist/bounce-milter-*.x86_64.rpm
	VERSION='$(VERSION)' MAINTAINER='$(MAINTAINER)' $(NFPM) package --config packaging/nfpm.yaml --packager rpm --target $(RPM)
	@echo "built $(RPM)"

check: deps fmt-check vet staticcheck test fuzz-smoke integration
	@echo "make check: all passed"

# Debian packages for the real-server tests: Postfix, swaks, Redis.
deps:
	@bash test/deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt wants to reformat:"; echo "$$out"; exit 1; fi

# packaging/docgen and test/webcheck are modules of their own (a licence
# classifier and a browser driver are no dependencies of bounce-milter):
# checked beside the main one.
vet:
	$(GO) vet ./...
	cd packaging/docgen && $(GO) vet ./...
	cd test/webcheck && $(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd packaging/docgen && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd test/webcheck && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The patched go-milter copy is a nested module: ./... does not reach it.
# Upstream's own client tests race under -race (ClientSession.Close, also in
# v0.10.2 as released), so the copy runs without it.
test:
	$(GO) test -race -count=1 -shuffle=on ./...
	cd packaging/docgen && $(GO) test -count=1 ./...
	cd third_party/go-milter && $(GO) test -count=1 ./...

# A short run of every fuzz target, on top of their seed corpora (which
# `go test` already runs).
fuzz-smoke:
	@bash test/fuzz-smoke.sh $(FUZZTIME)

# End-to-end tests against real Postfix (test/t-*/run.sh).
integration: build
	@bash test/run-all.sh

# Faults under load through a real Postfix (issue 12), about 5 minutes,
# not part of check (test/t-24-faults is its short version): Redis killed
# and restarted empty, Redis paused, the daemon killed, the data directory
# full. Prints the per-fault table and writes it to $(CHAOS_RESULTS).
# Needs root; sizes: the CH_* variables of test/chaos/faults.sh.
CHAOS_RESULTS ?= test/chaos/results/$(shell date -u +%F).md
chaos: build deps
	CHAOS_RESULTS=$(CHAOS_RESULTS) bash test/chaos/run.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist
