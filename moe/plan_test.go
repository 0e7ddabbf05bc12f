package moe_test

import (
	"strings"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestPlanInvariants checks NewPlan on random ids (many sentinels, empty experts,
// duplicates, S = 0): Perm is a permutation with inverse Inv, Sorted is ids[Perm] and
// ascending, the sort is stable, Counts are the histogram over 0..E−1, Offsets the inclusive
// cumulative sum, Rows = Offsets[E−1] = number of non-sentinel slots, Begin/End delimit each
// expert's rows, and the tail [Rows, S) holds exactly the sentinels.
func TestPlanInvariants(t *testing.T) {
	rng := moe.NewRand(4)
	for n := 0; n < 2000; n++ {
		E := 1 + rng.IntN(9)
		S := rng.IntN(40)
		used := 1 + rng.IntN(E)
		ids := make([]int32, S)
		for s := range ids {
			if rng.IntN(3) == 0 {
				ids[s] = int32(E)
			} else {
				ids[s] = int32(rng.IntN(used))
			}
		}
		p, err := moe.NewPlan(ids, E)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Perm) != S || len(p.Inv) != S || len(p.Sorted) != S || len(p.Counts) != E || len(p.Offsets) != E || p.E != E {
			t.Fatalf("plan lengths wrong for S=%d E=%d", S, E)
		}
		seen := make([]bool, S)
		for i, s := range p.Perm {
			if s < 0 || int(s) >= S || seen[s] {
				t.Fatalf("Perm is not a permutation: %v", p.Perm)
			}
			seen[s] = true
			if int(p.Inv[s]) != i {
				t.Fatalf("Inv[Perm[%d]] = %d", i, p.Inv[s])
			}
			if p.Sorted[i] != ids[s] {
				t.Fatalf("Sorted[%d] = %d, ids[Perm[%d]] = %d", i, p.Sorted[i], i, ids[s])
			}
			if i > 0 {
				if p.Sorted[i] < p.Sorted[i-1] {
					t.Fatalf("Sorted not ascending: %v", p.Sorted)
				}
				if p.Sorted[i] == p.Sorted[i-1] && p.Perm[i] < p.Perm[i-1] {
					t.Fatalf("sort not stable at row %d: %v", i, p.Perm)
				}
			}
		}
		hist := make([]int32, E+1)
		for _, id := range ids {
			hist[id]++
		}
		var acc int32
		for e := 0; e < E; e++ {
			acc += hist[e]
			if p.Counts[e] != hist[e] || p.Offsets[e] != acc {
				t.Fatalf("expert %d: count %d offset %d, want %d %d", e, p.Counts[e], p.Offsets[e], hist[e], acc)
			}
			if p.End(e)-p.Begin(e) != int(hist[e]) {
				t.Fatalf("expert %d: rows [%d, %d), want %d rows", e, p.Begin(e), p.End(e), hist[e])
			}
			for i := p.Begin(e); i < p.End(e); i++ {
				if p.Sorted[i] != int32(e) {
					t.Fatalf("row %d of expert %d holds id %d", i, e, p.Sorted[i])
				}
			}
		}
		if p.Rows != int(acc) || (E > 0 && p.Rows != int(p.Offsets[E-1])) || S-p.Rows != int(hist[E]) {
			t.Fatalf("Rows = %d, want %d", p.Rows, acc)
		}
		for i := p.Rows; i < S; i++ {
			if p.Sorted[i] != int32(E) {
				t.Fatalf("tail row %d holds id %d, want the sentinel %d", i, p.Sorted[i], E)
			}
		}
	}
}

// TestPlanErrors checks that bad ids and E are errors, never panics.
func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		ids  []int32
		E    int
		want string
	}{
		{"zero-E", []int32{0}, 0, "E ≥ 1"},
		{"negative-E", nil, -3, "E ≥ 1"},
		{"negative-id", []int32{0, -1}, 2, "id -1 at slot 1 outside [0, 2]"},
		{"id-above-sentinel", []int32{3}, 2, "id 3 at slot 0 outside [0, 2]"},
	}
	for _, tt := range tests {
		p, err := moe.NewPlan(tt.ids, tt.E)
		if err == nil || p != nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewPlan = %v, %v; want error containing %q", tt.name, p, err, tt.want)
		}
	}
	c := &moe.Case{Config: moe.Config{E: 2}, Routing: moe.Routing{IDs: []int32{1, 2, 0, 2}}}
	p, err := c.Plan()
	if err != nil || p.Rows != 2 || p.Perm[0] != 2 || p.Perm[1] != 0 {
		t.Errorf("Case.Plan = %+v, %v", p, err)
	}
}
