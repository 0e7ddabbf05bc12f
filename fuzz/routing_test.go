package fuzz

import (
	"context"
	"encoding/binary"
	"github.com/moecheck/moecheck/internal/fault"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// FuzzRouting: the routing stage alone, on arbitrary id arrays. Byte 0 gives E (1..16), the
// rest are int16 ids (so out-of-range and negative ids occur). Out-of-range ids must be
// refused with an error (by moe.NewPlan and by the backend's validation); valid ids must give
// a plan with the invariants of docs/path.md, and the backend's own sort and offsets (its
// reported stages, on a minimal case H = I = 1) must equal the canonical plan.
func FuzzRouting(f *testing.F) {
	f.Add([]byte{3, 0, 0, 2, 0, 3, 0, 1, 0})
	f.Add([]byte{0, 1, 0})
	f.Add([]byte{7, 0xff, 0xff, 9, 0})
	warmUp()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		E := 1 + int(data[0]%16)
		var ids []int32
		for b := data[1:]; len(b) >= 2 && len(ids) < 512; b = b[2:] {
			ids = append(ids, int32(int16(binary.LittleEndian.Uint16(b))))
		}
		valid := true
		for _, id := range ids {
			if id < 0 || int(id) > E {
				valid = false
			}
		}
		p, err := moe.NewPlan(ids, E)
		if !valid {
			if err == nil {
				t.Fatalf("ids %v with E=%d: out-of-range id accepted", ids, E)
			}
			// The backend must refuse the same ids with an error (not run them, not a case
			// error, not a panic): a case built field by field, bypassing Generate's checks.
			env, err := Env()
			if err != nil {
				t.Fatal(err)
			}
			T := len(ids)
			bad := &moe.Case{Config: moe.Config{T: T, H: 1, I: 1, E: E, K: 1, DType: moe.FP32},
				Routing: moe.Routing{IDs: ids, Weights: make([]float64, T)},
				X:       make([]float64, T), W1: make([]float64, 2*E), W2: make([]float64, E), DY: make([]float64, T)}
			_, err = fault.Run(context.Background(), env.Backend, bad, gpu.RunOptions{}, env.Faults)
			if err == nil {
				t.Fatalf("ids %v with E=%d: the backend ran them", ids, E)
			}
			if _, ok := gpu.AsCaseError(err); ok {
				t.Fatalf("ids %v with E=%d: a case error instead of a validation error: %v", ids, E, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ids %v with E=%d: %v", ids, E, err)
		}
		checkPlan(t, ids, E, p)
		if len(ids) == 0 {
			return
		}
		// The backend's routing stage on a minimal case (T = len(ids), K = 1, H = I = 1).
		env, err := Env()
		if err != nil {
			t.Fatal(err)
		}
		cfg := moe.Config{T: len(ids), H: 1, I: 1, E: E, K: 1, DType: moe.FP32}
		w := make([]float64, len(ids))
		for s, id := range ids {
			if int(id) != E {
				w[s] = 1
			}
		}
		c, err := moe.Generate(cfg, moe.Routing{IDs: ids, Weights: w}, 1, moe.Integer)
		if err != nil {
			t.Fatal(err)
		}
		r, err := fault.Run(context.Background(), env.Backend, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}, env.Faults)
		if err != nil {
			if _, ok := gpu.AsCaseError(err); ok {
				t.Fatalf("ids %v E=%d: backend case error: %v", ids, E, err)
			}
			t.Fatal(err)
		}
		if r.Stages == nil {
			return // the backend reports no stages: nothing more to see here
		}
		for e := range p.Offsets {
			if e >= len(r.Stages.Offsets) || r.Stages.Offsets[e] != p.Offsets[e] {
				t.Fatalf("ids %v E=%d: backend offsets %v, want %v", ids, E, r.Stages.Offsets, p.Offsets)
			}
		}
		for i := range p.Perm {
			if i >= len(r.Stages.Perm) || r.Stages.Perm[i] != p.Perm[i] {
				t.Fatalf("ids %v E=%d: backend sort %v, want %v", ids, E, r.Stages.Perm, p.Perm)
			}
		}
	})
}

// checkPlan asserts the plan invariants: Perm a permutation with Inv its inverse; Sorted
// non-decreasing and equal to ids[Perm]; ties in slot order (stable); counts per expert over
// 0..E−1; offsets their inclusive cumulative sum; Rows = Offsets[E−1] = the non-sentinel
// count, with exactly the sentinels at rows ≥ Rows.
func checkPlan(t *testing.T, ids []int32, E int, p *moe.Plan) {
	t.Helper()
	S := len(ids)
	seen := make([]bool, S)
	for i, s := range p.Perm {
		if s < 0 || int(s) >= S || seen[s] {
			t.Fatalf("perm %v is not a permutation", p.Perm)
		}
		seen[s] = true
		if p.Inv[s] != int32(i) {
			t.Fatalf("inv is not perm's inverse at slot %d", s)
		}
		if p.Sorted[i] != ids[s] {
			t.Fatalf("sorted[%d] = %d, ids[perm] = %d", i, p.Sorted[i], ids[s])
		}
		if i > 0 {
			a, b := p.Sorted[i-1], p.Sorted[i]
			if a > b || (a == b && p.Perm[i-1] > s) {
				t.Fatalf("rows %d, %d out of order or unstable: %v / %v", i-1, i, p.Sorted, p.Perm)
			}
		}
		if (i >= p.Rows) != (int(p.Sorted[i]) == E) {
			t.Fatalf("row %d: sentinel %v but Rows = %d", i, p.Sorted[i] == int32(E), p.Rows)
		}
	}
	count := make([]int32, E)
	for _, id := range ids {
		if int(id) < E {
			count[id]++
		}
	}
	acc := int32(0)
	for e := 0; e < E; e++ {
		acc += count[e]
		if p.Counts[e] != count[e] || p.Offsets[e] != acc {
			t.Fatalf("expert %d: count %d offset %d, want %d and %d", e, p.Counts[e], p.Offsets[e], count[e], acc)
		}
	}
	if p.Rows != int(acc) {
		t.Fatalf("Rows = %d, want %d", p.Rows, acc)
	}
}
