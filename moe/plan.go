package moe

import "fmt"

// Plan is the routing stage of the grouped-GEMM path, computed canonically: the slots sorted
// by local expert id (stable, so ties keep slot order; sentinels, the largest id, last), the
// per-expert counts over 0..E−1 and the inclusive int32 offsets.
type Plan struct {
	E       int
	Perm    []int32 // sorted row i holds slot Perm[i]
	Inv     []int32 // slot s sits at sorted row Inv[s]
	Sorted  []int32 // Sorted[i] = expert id of row i (E for the sentinel tail)
	Counts  []int32 // rows per local expert, length E
	Offsets []int32 // inclusive cumulative counts, length E; Offsets[E−1] = Rows
	Rows    int     // real (non-sentinel) rows; rows ≥ Rows are the sentinel tail
}

// NewPlan computes the plan of ids (each in [0, E]) by a stable counting sort.
func NewPlan(ids []int32, E int) (*Plan, error) {
	if E <= 0 {
		return nil, fmt.Errorf("moe: plan needs E ≥ 1, got %d", E)
	}
	hist := make([]int, E+1)
	for s, id := range ids {
		if id < 0 || int(id) > E {
			return nil, fmt.Errorf("moe: id %d at slot %d outside [0, %d]", id, s, E)
		}
		hist[id]++
	}
	p := &Plan{E: E, Perm: make([]int32, len(ids)), Inv: make([]int32, len(ids)), Sorted: make([]int32, len(ids)),
		Counts: make([]int32, E), Offsets: make([]int32, E)}
	start := make([]int, E+1)
	acc := 0
	for e := 0; e <= E; e++ {
		start[e] = acc
		acc += hist[e]
		if e < E {
			p.Counts[e] = int32(hist[e])
			p.Offsets[e] = int32(acc)
		}
	}
	p.Rows = acc - hist[E]
	for s, id := range ids {
		i := start[id]
		start[id]++
		p.Perm[i] = int32(s)
		p.Inv[s] = int32(i)
		p.Sorted[i] = id
	}
	return p, nil
}

// Begin returns the first sorted row of expert e (Offsets[e−1], or 0 for e = 0).
func (p *Plan) Begin(e int) int {
	if e == 0 {
		return 0
	}
	return int(p.Offsets[e-1])
}

// End returns one past the last sorted row of expert e (Offsets[e]).
func (p *Plan) End(e int) int { return int(p.Offsets[e]) }
