package main

import (
	"context"
	"testing"

	"github.com/spf13/pflag"
)

// TestOneCaseOneJob: check --spec/--preset checks one case, so it runs one job whatever
// --jobs (or a backend's default) says. Before, a preset on the 2-core machine ran its sim
// on cores/jobs = 1 core (43 s instead of 31 s at T = 4,096) and a torch:… or cuda worker
// started lanes it never used.
func TestOneCaseOneJob(t *testing.T) {
	a := &app{ctx: context.Background()}
	for _, tc := range []struct {
		name    string
		backend string
		jobs    string // --jobs given ("" = the default)
		one     bool
		want    int
	}{
		{"onecase/sim-default", "sim", "", true, 1},
		{"onecase/sim-explicit", "sim", "4", true, 1},
		{"onecase/torch-default", "torch:ledger:fixed", "", true, 1},
		{"onecase/cuda-explicit", "cuda", "16", true, 1},
		{"random/sim-explicit", "sim", "4", false, 4},
		{"random/torch-default", "torch:ledger:fixed", "", false, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			f := &backendFlags{backend: tc.backend, oneCase: tc.one}
			f.registerJobs(fs)
			if tc.jobs != "" {
				if err := fs.Parse([]string{"--jobs", tc.jobs}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.pool(a); err != nil {
				t.Fatal(err)
			}
			if f.jobs != tc.want {
				t.Errorf("jobs = %d, want %d", f.jobs, tc.want)
			}
		})
	}
}
