package gpu_test

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

type plain struct{}

func (plain) Name() string { return "plain" }
func (plain) Run(context.Context, *moe.Case, gpu.RunOptions) (*gpu.Result, error) {
	return nil, nil
}
func (plain) Close() error { return nil }

type declaring struct{ plain }

func (declaring) Contract() contract.Contract { return contract.Torch() }

func TestContractOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    gpu.Backend
		want string
	}{{"undeclared-is-exact", plain{}, "exact"}, {"declared", declaring{}, "torch"}} {
		if got := gpu.ContractOf(tc.b).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
