package nightly

import (
	"fmt"

	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// SampleRecord says that a verdict was judged on a sample (Options.Sample: the sampled check,
// oracle.Sample, docs/oracle.md §10): the fraction and seed of the draw and, in a case record,
// per sampled tensor what was judged and the derived miss bound. A start record's carries no
// tensors. Absent (older files, full checks): the case was judged whole.
type SampleRecord struct {
	Fraction float64 `json:"fraction"`
	Seed     uint64  `json:"seed"`
	// Delta is the miss probability each tensor's MissM is stated for (oracle.SampleDelta).
	Delta   float64              `json:"delta,omitempty"`
	Tensors []SampleTensorRecord `json:"tensors,omitempty"`
}

// SampleTensorRecord is oracle.SampleStat: the coverage of one sampled tensor.
type SampleTensorRecord struct {
	Tensor string `json:"tensor"`
	Unit   string `json:"unit"` // row, token, dw-row
	// Units of the tensor that were sampled, those judged, and of these the forced ones
	// (group edges, non-finite values).
	Units  int `json:"units"`
	Judged int `json:"judged"`
	Forced int `json:"forced"`
	// Elements of the tensor and those judged.
	Elements       int `json:"elements"`
	JudgedElements int `json:"judged_elements"`
	// MinFrac is f_min, the smallest fraction drawn in a stratum; MissM the smallest m with
	// (1 − MinFrac)^m ≤ Delta: a fault the full check flags in m ≥ MissM units outside the
	// forced ones escapes with probability at most Delta (0: every unit judged).
	MinFrac float64 `json:"min_frac"`
	MissM   int     `json:"miss_m"`
}

// sampleRecord is the record of what a sampled verdict judged (nil: judged whole).
func sampleRecord(r *oracle.SampleReport) *SampleRecord {
	if r == nil {
		return nil
	}
	s := &SampleRecord{Fraction: r.Fraction, Seed: r.Seed, Delta: oracle.SampleDelta}
	for _, t := range r.Tensors {
		s.Tensors = append(s.Tensors, SampleTensorRecord{Tensor: t.Name(), Unit: t.Unit, Units: t.Units, Judged: t.Judged, Forced: t.Forced,
			Elements: t.Elements, JudgedElements: t.JudgedElements, MinFrac: t.MinFrac, MissM: t.MissM})
	}
	return s
}

// outcomeSample is the sample the record of outcomes reports: for a failure, the failing
// outcome's own (nil when that verdict was judged whole); for a pass, the first sampled
// verdict among the outcomes (the base run's, as check prints it); nil when every verdict was
// judged whole.
func outcomeSample(outs []*props.Outcome, failed *props.Outcome) *SampleRecord {
	if failed != nil { // a failing record describes the failing verdict only
		if failed.Verdict == nil {
			return nil
		}
		return sampleRecord(failed.Verdict.Sample)
	}
	for _, o := range outs {
		if o.Verdict != nil && o.Verdict.Sample != nil {
			return sampleRecord(o.Verdict.Sample)
		}
	}
	return nil
}

// MaxMissM is the largest MissM over the record's tensors (0 for none).
func (s *SampleRecord) MaxMissM() int {
	m := 0
	for _, t := range s.Tensors {
		m = max(m, t.MissM)
	}
	return m
}

// JudgedFraction is the fraction of the sampled tensors' elements that were judged (1 with
// none).
func (s *SampleRecord) JudgedFraction() float64 {
	var n, j int
	for _, t := range s.Tensors {
		n += t.Elements
		j += t.JudgedElements
	}
	if n == 0 {
		return 1
	}
	return float64(j) / float64(n)
}

// sampleRepro is the --sample flags of a sampled run's reproduce lines ("" for a full one).
func sampleRepro(s oracle.Sample) string {
	if !s.On() {
		return ""
	}
	return fmt.Sprintf("--sample %g --sample-seed %d", s.Fraction, s.Seed)
}
