# moecheck build helpers. Go itself needs none of this: `go build ./...` and `go test ./...`
# work without CUDA (the PTX is committed and embedded).

NVCC ?= nvcc
NVCCFLAGS ?= -ptx -arch=sm_80 -O3 -std=c++14
KERNELS := $(wildcard gpu/cuda/kernels/*.cu)
PTX := $(KERNELS:.cu=.ptx)

.PHONY: ptx check-ptx worker device print-nvccflags

# ptx: recompile the committed PTX (needs nvcc from CUDA 11.8: scripts/cuda-toolchain.sh).
ptx: $(PTX)

gpu/cuda/kernels/%.ptx: gpu/cuda/kernels/%.cu gpu/cuda/kernels/common.cuh
	$(NVCC) $(NVCCFLAGS) -o $@ $<

# check-ptx: the committed PTX matches the sources (CI).
check-ptx:
	scripts/check-ptx.sh

# worker: the CUDA worker for the GPU machine (cgo against the CUDA 11.8 headers here).
worker:
	mkdir -p .device
	CGO_ENABLED=1 go build -tags cuda -o .device/moecheck-worker ./cmd/moecheck-worker

# device: everything a device run carries in .device (see scripts/device-run.sh).
device: check-ptx worker
	go build -o .device/moecheck-worker-sim ./cmd/moecheck-worker

print-nvccflags:
	@echo $(NVCCFLAGS)
