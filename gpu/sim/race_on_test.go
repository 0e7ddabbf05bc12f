//go:build race

package sim

// raceBuild: the tests run instrumented by the race detector (see TestVecKernelsBitwise).
const raceBuild = true
