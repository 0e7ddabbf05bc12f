package backends

import (
	"slices"
	"strings"
	"testing"
)

func TestDeviceArgv(t *testing.T) {
	for _, tc := range []struct {
		name, backend string
		argv          []string
		device        string
		want          []string
		wantErr       string
	}{
		{"device/none", "cuda", []string{"moecheck-worker", "-backend", "cuda"}, "", []string{"moecheck-worker", "-backend", "cuda"}, ""},
		{"device/cuda", "cuda", []string{"moecheck-worker", "-backend", "cuda"}, "1", []string{"moecheck-worker", "-backend", "cuda", "-device", "1"}, ""},
		{"device/torch", "torch:ledger:x", []string{"python3", "-m", "moecheck.worker", "--target", "ledger:x"}, "3",
			[]string{"python3", "-m", "moecheck.worker", "--target", "ledger:x", "--device", "cuda:3"}, ""},
		{"device/sim", "sim", nil, "0", nil, "sim backend runs on the CPU"},
		{"device/negative", "cuda", []string{"w"}, "-1", nil, "CUDA device ordinal"},
		{"device/word", "cuda", []string{"w"}, "gpu0", nil, "CUDA device ordinal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deviceArgv(tc.backend, tc.argv, tc.device)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
