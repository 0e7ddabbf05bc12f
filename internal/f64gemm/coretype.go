package f64gemm

import (
	"golang.org/x/sys/cpu"
)

// CoreTypeEnv is the environment variable OpenBLAS (built with DYNAMIC_ARCH, as Debian's)
// reads once, when the library initialises, to choose its kernels instead of detecting
// the CPU.
const CoreTypeEnv = "OPENBLAS_CORETYPE"

// genericCores are the cores OpenBLAS 0.3.21's detection falls back to when it does not
// know the CPU model: on the H200 host (a virtual machine reporting "Intel(R) Xeon(R)
// Processor", a Sapphire Rapids with AVX-512) it chose "Prescott", an SSE3 kernel, and the
// float64 oracle of the Qwen3 EP-8 rank took 227 CPU-s there against 57 on this repository's
// 2-core development machine (README, "Real shapes, phase 5").
var genericCores = map[string]bool{"Prescott": true, "Core2": true, "Penryn": true, "Dunnington": true,
	"Nehalem": true, "Atom": true, "Sandybridge": true, "Unknown": true, "": false}

// features is what CoreTypeFor needs to know of the CPU.
type features struct{ avx2, fma, avx512 bool }

func hostFeatures() features {
	x := cpu.X86
	return features{
		avx2:   x.HasAVX2,
		fma:    x.HasFMA,
		avx512: x.HasAVX512F && x.HasAVX512DQ && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512VL,
	}
}

// coreTypeFor is the OpenBLAS core type to force for a library that chose core (its
// openblas_get_corename) on a CPU with features f: "SkylakeX" with AVX-512 (F, DQ, CD, BW,
// VL), else "Haswell" with AVX2 and FMA, when core is one of the generic fallbacks; "" when
// the library's choice stands (it recognised the CPU, or the CPU has neither).
func coreTypeFor(core string, f features) string {
	if !genericCores[core] {
		return ""
	}
	switch {
	case f.avx512 && f.avx2 && f.fma:
		return "SkylakeX"
	case f.avx2 && f.fma:
		return "Haswell"
	}
	return ""
}

// CoreTypeFix returns the value of CoreTypeEnv that the process should be restarted with
// (syscall.Exec, before any work) so that OpenBLAS uses the CPU's vector units: "" in the
// default build, when the variable is already set (the user's choice, or the restart itself:
// no loop), or when OpenBLAS recognised the CPU.
func CoreTypeFix(getenv func(string) string) string {
	if !openblas || getenv(CoreTypeEnv) != "" {
		return ""
	}
	return coreTypeFor(CoreName(), hostFeatures())
}
