package oracle

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Check names: what kind of rule an element broke.
const (
	CheckBound        = "bound"              // outside the derived enclosure
	CheckNonFinite    = "nonfinite"          // NaN/Inf where the enclosure is finite
	CheckSignature    = "signature"          // a poison signature NaN survived: names its buffer
	CheckSentinelOut  = "sentinel-output"    // output row of an all-sentinel token not 0
	CheckSentinelDRW  = "sentinel-drw"       // routing-weight gradient of a sentinel slot not 0
	CheckEmptyWgrad   = "empty-expert-wgrad" // weight/bias gradient of an expert with no rows not 0
	CheckShape        = "shape"              // a result tensor has the wrong length
	CheckPlan         = "plan"               // the path's sort/offsets differ from the routing's
	CheckStage        = "stage"              // a stage outside its enclosure from the path's own inputs
	CheckBitwise      = "bitwise"            // two results that must be identical differ
	CheckCaseError    = "case-error"         // the backend crashed / hung / ran out of memory
	CheckBackendError = "backend-error"      // the backend returned an error
)

// Location says where an element sits in the problem. Fields that do not apply are −1.
type Location struct {
	Tensor    moe.Tensor
	Index     int // flat index in the tensor
	Token     int
	Slot      int // k in [0, K)
	Expert    int // local expert id (E for a sentinel slot)
	SortedRow int // row in the path's sorted order
	Row, Col  int // matrix coordinates (for weights: output row j / column h)
	Sentinel  bool
	Buffer    gpu.Buffer // the buffer a surviving signature NaN names (0: none)
	// Feeds, for an element of y or dX (token t, column h), are the slots of token t that
	// feed it: each slot's expert and its row in the path's sorted order (a group-boundary
	// bug points at its row). Empty for other tensors.
	Feeds []Feed
}

// Feed is one slot feeding an output row: y[t,:] = Σ_k o[row(t,k),:], dX[t,:] = Σ_k dXs[row(t,k),:].
type Feed struct {
	Slot      int  // k in [0, K)
	Expert    int  // local expert id (E: sentinel)
	SortedRow int  // the slot's row in the sorted order
	Sentinel  bool // the slot is a sentinel (its row is in the tail; it contributes nothing)
}

func (l Location) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%d]", l.Tensor, l.Index)
	add := func(k string, v int) {
		if v >= 0 {
			fmt.Fprintf(&b, " %s=%d", k, v)
		}
	}
	add("token", l.Token)
	add("slot", l.Slot)
	add("expert", l.Expert)
	add("sorted_row", l.SortedRow)
	add("row", l.Row)
	add("col", l.Col)
	if l.Sentinel {
		b.WriteString(" sentinel-tail")
	}
	if l.Buffer != 0 {
		fmt.Fprintf(&b, " buffer=%s", l.Buffer)
	}
	if len(l.Feeds) > 0 {
		b.WriteString(" fed by")
		for i, f := range l.Feeds {
			sep := ","
			if i == 0 {
				sep = ""
			}
			if f.Sentinel {
				fmt.Fprintf(&b, "%s slot %d→sentinel (row %d)", sep, f.Slot, f.SortedRow)
				continue
			}
			fmt.Fprintf(&b, "%s slot %d→expert %d row %d", sep, f.Slot, f.Expert, f.SortedRow)
		}
	}
	return b.String()
}

// Failure is one broken rule on one tensor, summarized: how many elements broke it and the
// worst of them.
type Failure struct {
	Check  string
	Tensor moe.Tensor
	// Local marks a stage-local judgement: the tensor was compared against the enclosure
	// computed from the path's own reported inputs to its stage (docs/oracle.md §4), so the
	// error arose in that stage. Failures of stage tensors are stage-local unless Check is
	// CheckBitwise.
	Local  bool
	Count  int      // failing elements
	Worst  Location // the worst element (largest error/bound; non-finite first)
	Got    float64
	Want   float64 // enclosure center (or the exact value the contract demands)
	Bound  float64 // enclosure radius (0: exact)
	Ratio  float64 // |got − want| / bound (+Inf when bound is 0 or got is not finite)
	Detail string
}

// TensorName is the tensor's name as reports print it: stage-local judgements of an output
// read "y@local" (display only: the identity is Tensor and Local).
func (f Failure) TensorName() string {
	if f.Local && f.Tensor.Output() {
		return f.Tensor.String() + "@local"
	}
	return f.Tensor.String()
}

// Stage is the stage the failure is attributed to, and whether the error arose there
// (stage-local) rather than possibly upstream (end to end).
func (f Failure) Stage() (stage moe.Stage, local bool) {
	switch f.Check {
	case CheckCaseError:
		return moe.StageCaseError, true
	case CheckPlan:
		return moe.StagePlan, true
	}
	st := f.Tensor.Stage()
	switch {
	case st == moe.StagePlan:
		return st, true
	case f.Tensor.IsStage():
		// stage tensors are always checked against their stage-local enclosure, except
		// by a bitwise comparison of two runs
		return st, f.Check != CheckBitwise
	}
	return st, f.Local
}

func (f Failure) String() string {
	if f.Check == CheckCaseError && f.Detail != "" {
		return f.Detail // no element, location or value: the case did not run to the end
	}
	s := fmt.Sprintf("%s %s: %d element(s); worst %s got %s want %s ± %s", f.Check, f.TensorName(), f.Count, f.Worst,
		fmtF(f.Got), fmtF(f.Want), fmtF(f.Bound))
	if f.Detail != "" {
		s += " (" + f.Detail + ")"
	}
	return s
}

func fmtF(x float64) string { return fmt.Sprintf("%.6g", x) }

// TensorStat summarizes how one tensor compared.
type TensorStat struct {
	Tensor   moe.Tensor
	Local    bool    // the stage-local comparison of an output (see Failure.Local)
	N        int     // elements
	Exact    int     // elements whose value the enclosure determines exactly (bitwise checked)
	Unknown  int     // elements with no constraint (unwritten by contract, or may overflow)
	MaxRatio float64 // max |got − center| / radius over elements whose enclosure spans more than 8 dtype values (narrower ones are discrete)
	Failed   int     // elements that broke a rule
	// Judged is the elements a sampled check judged (Verdict.Sample; Exact, Unknown,
	// MaxRatio and Failed count those only); 0 in a full check, which judges all N.
	Judged   int
	RelFro   float64 // ‖got − ref‖_F / ‖ref‖_F against the float64 reference (NaN if not computed)
	CalcDiff float64 // DeepGEMM's 1 − 2Σxy/Σ(x²+y²) against the reference (NaN if not computed)
}

// Name is the stat's tensor as reports print it ("y@local" for a stage-local output).
func (s TensorStat) Name() string {
	return Failure{Tensor: s.Tensor, Local: s.Local}.TensorName()
}

// Verdict is the oracle's judgement of one result.
type Verdict struct {
	Pass bool
	// Contract names the path contract the result was judged under ("exact", "torch", ...).
	Contract  string
	Failures  []Failure
	Stats     []TensorStat
	CaseError *gpu.CaseError // set when the backend could not finish the case
	// Sample, set by a sampled check (Options.Sample), says what fraction of each sampled
	// tensor was judged and the derived miss bound: a pass covers the judged elements only.
	// Nil for a full check.
	Sample *SampleReport
	// ContextSkipped, when set, says why a failing verdict has no float64 reference context
	// (Options.ContextWork): its outputs' RelFro and CalcDiff are NaN.
	ContextSkipped string
}

// MaxRatio is the largest error/bound ratio over all tensors (for passing results ≤ 1).
func (v *Verdict) MaxRatio() float64 {
	m := 0.0
	for _, s := range v.Stats {
		if s.MaxRatio > m {
			m = s.MaxRatio
		}
	}
	return m
}

// Checks lists the distinct checks that failed, in order of first appearance.
func (v *Verdict) Checks() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range v.Failures {
		if !seen[f.Check] {
			seen[f.Check] = true
			out = append(out, f.Check)
		}
	}
	return out
}

// Summary is a one-line description.
func (v *Verdict) Summary() string {
	if v.CaseError != nil {
		return "FAIL " + v.CaseError.Kind.String() + ": " + v.CaseError.Error()
	}
	if v.Pass && v.Sample != nil {
		return fmt.Sprintf("pass on a sample: %s (max error/bound %.3g over the judged elements)", v.Sample.Coverage(), v.MaxRatio())
	}
	if v.Pass {
		return fmt.Sprintf("pass (max error/bound %.3g)", v.MaxRatio())
	}
	f := v.Failures[0]
	return fmt.Sprintf("FAIL %d rule(s); first: %s", len(v.Failures), f)
}

// Write prints the verdict: failures, then the per-tensor table.
func (v *Verdict) Write(w io.Writer) error {
	if _, err := fmt.Fprintln(w, v.Summary()); err != nil {
		return err
	}
	for _, f := range v.Failures {
		fmt.Fprintln(w, "  -", f)
	}
	if v.ContextSkipped != "" {
		fmt.Fprintln(w, "  context:", v.ContextSkipped)
	}
	if v.Sample != nil {
		if err := v.Sample.Write(w, "  "); err != nil {
			return err
		}
	}
	if len(v.Stats) == 0 {
		return nil
	}
	judged := "" // a sampled check's column: the elements judged of each tensor
	if v.Sample != nil {
		judged = fmt.Sprintf(" %8s", "judged")
	}
	fmt.Fprintf(w, "  %-8s %8s%s %8s %8s %8s %10s %10s %10s\n", "tensor", "n", judged, "exact", "unknown", "failed", "max e/b", "rel-fro", "calc_diff")
	for _, s := range v.Stats {
		if v.Sample != nil {
			j := s.Judged
			if j == 0 {
				j = s.N
			}
			judged = fmt.Sprintf(" %8d", j)
		}
		fmt.Fprintf(w, "  %-8s %8d%s %8d %8d %8d %10.3g %10.3g %10.3g\n", s.Name(), s.N, judged, s.Exact, s.Unknown, s.Failed, s.MaxRatio, s.RelFro, s.CalcDiff)
	}
	return nil
}

// ratio returns |got − want|/bound, +Inf for a non-finite got or an exceeded zero bound.
func ratio(got, want, bound float64) float64 {
	if math.IsNaN(got) || math.IsInf(got, 0) {
		return math.Inf(1)
	}
	return ratioFinite(got, want, bound)
}
