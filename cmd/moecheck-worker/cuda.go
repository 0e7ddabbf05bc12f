//go:build cuda

package main

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/cuda"
)

func init() {
	defaultBackend = "cuda"
	backends["cuda"] = func(f *flags) (gpu.Backend, string, error) {
		b, err := cuda.New(cuda.Options{Device: f.device, NoGuardChecks: f.noGuardChecks, TileN: f.tileN, TileK: f.tileK})
		if err != nil {
			return nil, "", err
		}
		return b, b.Device(), nil
	}
	benchers["cuda"] = benchCUDA
}
