// Package fault is the harness's fault catalog: named defects of real grouped-GEMM MoE
// paths that moecheck's own backends (gpu/sim, gpu/cuda, the worker) switch on to show that
// the properties catch each one (mutation testing, demos, triage). It is not part of the
// backend contract: gpu.RunOptions carries no faults, and a backend takes them only by
// implementing Runner.
package fault
