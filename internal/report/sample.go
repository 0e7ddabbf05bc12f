package report

import (
	"github.com/moecheck/moecheck/internal/nightly"
)

// SampledTensor is one tensor's coverage over the items that passed on a sample: the
// smallest fraction drawn in any of its strata (f_min) and the largest miss-m, with the
// miss probability it is stated for.
type SampledTensor struct {
	Tensor, Unit string
	Items        int     // sampled passing items that sampled this tensor
	MinFrac      float64 // smallest f_min over them
	MaxMissM     int     // largest miss-m over them
	Delta        float64
}

// sampled gathers the items that passed on a sample and the per-tensor coverage over them.
func (r *Report) sampled(recs []nightly.Record) {
	idx := map[string]int{}
	for _, rec := range recs {
		if rec.Status != nightly.StatusPass || rec.Sample == nil {
			continue
		}
		r.Sampled = append(r.Sampled, rec)
		for _, t := range rec.Sample.Tensors {
			k := t.Tensor + "\x00" + t.Unit
			i, ok := idx[k]
			if !ok {
				i = len(r.SampledTensors)
				idx[k] = i
				r.SampledTensors = append(r.SampledTensors, SampledTensor{Tensor: t.Tensor, Unit: t.Unit, MinFrac: 1, Delta: rec.Sample.Delta})
			}
			st := &r.SampledTensors[i]
			st.Items++
			st.MinFrac = min(st.MinFrac, t.MinFrac)
			st.MaxMissM = max(st.MaxMissM, t.MissM)
			st.Delta = max(st.Delta, rec.Sample.Delta)
		}
	}
}
