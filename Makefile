# idlink — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
PKGS     := ./...
NHSUK_VERSION := 10.6.1
STATICCHECK_VERSION := v0.8.2

AXE_VERSION := 4.14.1

.PHONY: run test node-deps test-postgres test-browser lint bench build assets axe fuzz clean

## run: start the server on http://localhost:8080 with embedded SQLite under ./data
run:
	$(GO) run ./cmd/idlink serve

## build: compile the binaries into ./bin
build:
	$(GO) build -o bin/ ./cmd/...

## test: every test, with the race detector (PostgreSQL tests run when IDLINK_TEST_POSTGRES_URL is set;
## the Node relying party in test/rpnode runs when node is installed)
test: node-deps
	$(GO) test -race -count=1 $(PKGS)

## node-deps: install the Node relying party's packages (pinned in package-lock.json), only when node exists
node-deps:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  cd test/rpnode && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "node not installed: skipping the Node relying party's packages"; fi

## test-postgres: the same, with PostgreSQL on this machine required
test-postgres: node-deps
	IDLINK_TEST_POSTGRES_URL=$${IDLINK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable} \
	IDLINK_REQUIRE_POSTGRES=1 $(GO) test -race -count=1 $(PKGS)

## test-browser: only the tests that drive pages in headless Chromium (Debian's chromium)
test-browser:
	$(GO) test -count=1 ./server/browser/...

## lint: gofmt, go vet and staticcheck (pinned)
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## bench: the benchmarks reported in docs/PERFORMANCE.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3s ./server/password/ ./server/login/

## fuzz: run each fuzz target for a short while
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseVTR -fuzztime 30s ./server/trust/
	$(GO) test -run '^$$' -fuzz FuzzParsePHC -fuzztime 30s -fuzzminimizetime 100x ./server/password/
	$(GO) test -run '^$$' -fuzz FuzzParseErrorBody -fuzztime 30s ./server/notify/

## assets: refresh the vendored NHS.UK frontend (needs npm; the result is committed)
assets:
	rm -rf .assets-tmp && mkdir .assets-tmp
	cd .assets-tmp && npm pack nhsuk-frontend@$(NHSUK_VERSION) >/dev/null && tar xzf nhsuk-frontend-$(NHSUK_VERSION).tgz
	# The Frutiger @font-face rules point at a CDN our Content-Security-Policy
	# forbids (and the font is licensed): drop them and fall back to Arial.
	perl -0pe 's/\@font-face\{[^}]*\}//g' .assets-tmp/package/dist/nhsuk/nhsuk-frontend.min.css > server/web/static/nhsuk-frontend.min.css
	mkdir -p server/web/static/images
	cp .assets-tmp/package/dist/nhsuk/assets/images/favicon.ico .assets-tmp/package/dist/nhsuk/assets/images/favicon.svg \
	   .assets-tmp/package/dist/nhsuk/assets/images/nhsuk-icon-*.svg server/web/static/images/
	rm -rf .assets-tmp

## axe: refresh the vendored axe-core used by the browser tests (needs npm; committed)
axe:
	rm -rf .axe-tmp && mkdir .axe-tmp
	cd .axe-tmp && npm pack axe-core@$(AXE_VERSION) >/dev/null && tar xzf axe-core-$(AXE_VERSION).tgz
	cp .axe-tmp/package/axe.min.js server/browser/testdata/axe.min.js
	cp .axe-tmp/package/LICENSE server/browser/testdata/axe.LICENSE
	rm -rf .axe-tmp

clean:
	rm -rf bin data
