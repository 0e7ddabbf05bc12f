// Package blackbox is an example of what a user writes to verify their own MoE path with
// moecheck: a type that implements gpu.Backend (here it wraps the CPU model and, like most
// real kernels, reports no stage intermediates), and a one-line conformance test calling
// props.Verify. Copy it into your module and replace Run with a call into your kernels.
package blackbox
