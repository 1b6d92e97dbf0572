# The targets README.md names. "make test" is what CI runs (.ci/run).
GO ?= go
# The whole suite, fault tests included, must stay well under CI's 20 minutes.
TEST_TIMEOUT ?= 15m

.PHONY: all build test demo redis-server chromium vet fuzz bench soak clean

all: build

build:
	$(GO) build -o bin/resync ./cmd/resync

redis-server:
	@./.ci/install-redis

# The status dashboard's browser test drives it headless.
chromium:
	@./.ci/install-chromium

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }

test: redis-server chromium vet
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

demo: redis-server
	$(GO) run ./cmd/resync demo

# Fuzz the parsers beyond the seed corpus that "make test" runs.
FUZZTIME ?= 3m
fuzz:
	$(GO) test ./internal/resp -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME)
	$(GO) test ./internal/rdb -run '^$$' -fuzz FuzzDecoder -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./internal/rdb -run '^$$' -fuzz FuzzLZF -fuzztime $(FUZZTIME)
	$(GO) test ./internal/rdb -run '^$$' -fuzz FuzzIsEmpty -fuzztime $(FUZZTIME)
	$(GO) test ./internal/rdb -run '^$$' -fuzz FuzzStringValue -fuzztime $(FUZZTIME)
	$(GO) test ./internal/command -run '^$$' -fuzz FuzzKeys -fuzztime $(FUZZTIME)
	$(GO) test ./internal/filter -run '^$$' -fuzz FuzzApply -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cluster -run '^$$' -fuzz FuzzParseNodes -fuzztime $(FUZZTIME)
	$(GO) test ./internal/checkpoint -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

bench:
	$(GO) test ./internal/resp ./internal/rdb ./internal/filter -run '^$$' -bench . -benchmem
	$(GO) test ./internal/compare -run '^$$' -bench Compare -benchtime 3x
	$(GO) test ./internal/writer -run '^$$' -bench Write -benchmem -benchtime 500000x
	$(GO) test ./internal/task -run '^$$' -bench Stream -benchtime 3x
	@echo "the whole-sync benchmark against the machine's limits: go run ./cmd/resync bench (about 6.5 min)"

# Long-running fault and endurance runs; none exist yet.
soak:
	@echo "no soak tests yet"

clean:
	rm -rf bin
