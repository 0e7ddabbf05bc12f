//go:build !amd64 || purego

package sim

// Without the vector kernels (kernel_amd64.go) gemv and gemv2 run their Go loops.

const vecKernels = false

func gemvVec(c, a *float32, as int, b *float32, bs, k, n int) {
	panic("sim: no vector kernel on this platform")
}

func gemv2Vec(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int) {
	panic("sim: no vector kernel on this platform")
}

func gemvWide(c, a *float32, as int, b *float32, bs, k, n int) {
	panic("sim: no vector kernel on this platform")
}

func gemv2Wide(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int) {
	panic("sim: no vector kernel on this platform")
}

func gemvSel(c, a *float32, as int, b *float32, bs, k, n int) uint32 {
	panic("sim: no vector kernel on this platform")
}

func gemv2Sel(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int) uint32 {
	panic("sim: no vector kernel on this platform")
}

func getMXCSR() uint32 { panic("sim: no MXCSR on this platform") }

func setMXCSR(v uint32) { panic("sim: no MXCSR on this platform") }

const mxcsrSubnormalFlags = 0x12

func roundBF16Vec(v *float32, n int) int { panic("sim: no vector kernel on this platform") }

func roundFP16Vec(v *float32, n int) int { panic("sim: no vector kernel on this platform") }
