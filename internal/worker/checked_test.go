package worker

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/checked"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// checkedBackend has RunChecked (as gpu/cuda's lanes do); its Run and RunFaults fail.
type checkedBackend struct {
	fakeBackend
	calls *int
}

func (checkedBackend) Run(context.Context, *moe.Case, gpu.RunOptions) (*gpu.Result, error) {
	return nil, errors.New("Run called: the case would be validated again")
}

func (checkedBackend) RunFaults(context.Context, *moe.Case, gpu.RunOptions, fault.Set) (*gpu.Result, error) {
	return nil, errors.New("RunFaults called: the case would be validated again")
}

func (b checkedBackend) RunChecked(_ context.Context, k checked.Case, _ gpu.RunOptions, _ fault.Set) (*gpu.Result, error) {
	*b.calls++
	return fakeResult(k.Case()), nil
}

// Serve hands a decoded (validated) case to a backend's RunChecked, and a case that fails
// validation never reaches the backend.
func TestServeRunsCheckedCases(t *testing.T) {
	c := testCase(t, moe.BF16, true, true)
	bad := testCase(t, moe.BF16, false, false)
	bad.Routing.IDs[0] = 99 // outside [0, E]
	var in, out bytes.Buffer
	for id, cs := range []*moe.Case{c, bad} {
		f, err := EncodeRequest(uint64(id+1), cs, gpu.RunOptions{Poison: gpu.PoisonNaN}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFrame(&in, f); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	if err := Serve(&in, &out, checkedBackend{calls: &calls}, ServeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(&out); err != nil { // hello
		t.Fatal(err)
	}
	r, err := ReadFrame(&out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Type != TypeResult || r.Header.ID != 1 {
		t.Fatalf("first reply %+v, want the result of case 1", r.Header)
	}
	r, err = ReadFrame(&out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Type != TypeError || r.Header.Kind != KindBadRequest || r.Header.ID != 2 {
		t.Fatalf("second reply %+v, want a bad_request for case 2", r.Header)
	}
	if calls != 1 {
		t.Errorf("RunChecked called %d times, want 1", calls)
	}
}
