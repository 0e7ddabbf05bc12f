# moecheck build helpers. Go itself needs none of this: `go build ./...` and `go test ./...`
# work without CUDA (the PTX is committed and embedded).

NVCC ?= nvcc
NVCCFLAGS ?= -ptx -arch=sm_80 -O3 -std=c++14
KERNELS := $(wildcard gpu/cuda/kernels/*.cu)
PTX := $(KERNELS:.cu=.ptx)

.PHONY: test check build-openblas build-openblas-static vet vet-cuda fuzz fuzz-short bench soak mutants ci ptx check-ptx kernel-emu worker device device-suite print-nvccflags

GO ?= go
FUZZTIME ?= 60s

# test: the whole test suite on the CPU path (what CI runs), and gpu/sim without its
# assembly kernels (purego: the Go loops they must match bitwise).
test:
	$(GO) vet ./...
	$(GO) test ./...
	$(GO) vet -tags purego ./gpu/sim
	$(GO) test -tags purego ./gpu/sim

# check: the main job on the built-in CPU path: a random property run with shrinking.
check:
	$(GO) run ./cmd/moecheck check --backend sim --cases 2000 --seed 1

# build-openblas: the CLI with the build tag openblas: the oracle's and the reference's float64
# GEMMs through OpenBLAS's cblas_dgemm (cgo; needs libopenblas-dev: cblas.h and -lopenblas)
# instead of gonum's pure-Go Dgemm; same verdicts (README "Optional OpenBLAS"). The default
# build stays pure Go (CGO_ENABLED=0 works).
build-openblas:
	CGO_ENABLED=1 $(GO) build -tags openblas -o moecheck-openblas ./cmd/moecheck

# build-openblas-static: the same, statically linked against libopenblas.a (Debian's
# libopenblas-dev ships it, with every CPU's kernels): runs on a host without OpenBLAS, e.g.
# the GPU machine. netgo and osusergo keep glibc's NSS out of the static link.
build-openblas-static:
	CGO_ENABLED=1 $(GO) build -tags openblas,netgo,osusergo -ldflags '-extldflags "-static"' -o moecheck-openblas-static ./cmd/moecheck

# vet-cuda: compile and vet the cuda build tag (needs the CUDA 11.8 headers:
# scripts/cuda-toolchain.sh); nothing here runs it.
vet-cuda:
	CGO_ENABLED=1 $(GO) vet -tags cuda ./...

# fuzz: each native fuzz target for FUZZTIME (default 60s); scripts/fuzz.sh retries (at most twice) a run
# that ends only in Go 1.26's -fuzztime deadline race (golang/go#75804), nothing else.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# fuzz-short: each fuzz target briefly (CI).
fuzz-short:
	$(MAKE) fuzz FUZZTIME=10s

# bench: the benchmarks whose figures are in the README.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2x ./reference ./gpu/sim ./oracle

# soak: the long no-false-alarm run (1,000,000 cases per dtype; hours on 2 cores).
soak:
	for d in bf16 fp16 fp32; do $(GO) run ./cmd/moecheck check --backend sim --properties matches --dtype $$d --cases 1000000 --seed 11 || exit 1; done

# mutants: the property suite against every fault of the catalog.
mutants:
	$(GO) run ./cmd/moecheck mutants --backend sim

# ci: everything .ci/run does after installing the toolchain.
ci: test pytest check vet-cuda check-ptx kernel-emu fuzz-short

# ptx: recompile the committed PTX (needs nvcc from CUDA 11.8: scripts/cuda-toolchain.sh).
ptx: $(PTX)

gpu/cuda/kernels/%.ptx: gpu/cuda/kernels/%.cu gpu/cuda/kernels/common.cuh
	$(NVCC) $(NVCCFLAGS) -o $@ $<

# check-ptx: the committed PTX matches the sources (CI).
check-ptx:
	scripts/check-ptx.sh

# kernel-emu: the fused prepare kernel run on the CPU (g++, launches emulated serially) and
# compared byte for byte with the kernels it replaced; no GPU needed.
kernel-emu:
	scripts/kernel-emu.sh

# worker: the CUDA worker for the GPU machine (cgo against the CUDA 11.8 headers here).
worker:
	mkdir -p .device
	CGO_ENABLED=1 go build -tags cuda -o .device/moecheck-worker ./cmd/moecheck-worker

# device: everything a device run carries in .device (see scripts/device-run.sh).
device: check-ptx worker
	go build -o .device/moecheck-worker-sim ./cmd/moecheck-worker

# device-suite: what scripts/device-suite.sh carries in .device: the CLI, the CUDA worker and
# the fuzz test binary (coverage-instrumented for FuzzPath).
device-suite: worker
	CGO_ENABLED=0 $(GO) build -o .device/moecheck ./cmd/moecheck
	$(GO) test -c -fuzz FuzzPath -o .device/fuzz.test ./fuzz

print-nvccflags:
	@echo $(NVCCFLAGS)

# device-torch: the CLI for scripts/device-torch.sh (PyTorch targets on the GPU machine).
device-torch:
	mkdir -p .device
	CGO_ENABLED=0 $(GO) build -o .device/moecheck ./cmd/moecheck

# pytest: the Python package's tests on the CPU (needs python3-torch; see python/README.md).
PYTHON ?= /usr/bin/python3
pytest:
	cd python && MOECHECK_REQUIRE_PYTHON=$(REQUIRE_PYTHON) $(PYTHON) -m unittest discover -s tests -t . -v

.PHONY: device-torch pytest
