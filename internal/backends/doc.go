// Package backends opens a gpu.Backend from its name on a command line or in an environment
// variable: "sim" (the CPU model, default), "cuda" (moecheck-worker -backend cuda) or "worker:<command line>" (a worker process
// speaking the protocol of package internal/worker, e.g. "worker:.device/moecheck-worker -backend
// cuda"). It exists so that the CLI and the fuzz targets choose backends the same way.
package backends
