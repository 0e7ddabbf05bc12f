package nightly

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"math"
	"os"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/triage"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// Artifact is the per-failure file artifacts/<id>.json: the element maps of the stage
// tensors a report plots, from one run of the failing case (the shrunk one for random cases)
// with stage capture under signature poison.
type Artifact struct {
	V          int    `json:"v"`
	ID         string `json:"id"`
	Config     string `json:"config"`
	Spec       string `json:"spec,omitempty"`
	Poison     string `json:"poison"`
	FirstStage string `json:"first_stage,omitempty"`
	Where      string `json:"where,omitempty"` // the first stage's worst element
	Worst      string `json:"worst,omitempty"` // tensor of the error/bound heatmap
	NaN        string `json:"nan,omitempty"`   // tensor of the non-finite map ("" when every element is finite)
	Maps       []Map  `json:"maps,omitempty"`
	Note       string `json:"note,omitempty"` // why there are no maps
}

// Map is one stage tensor's element map (oracle.ElementMap) in sorted-row order, possibly
// downsampled to at most MaxCells cells by blocks of RowStep × ColStep elements (a cell
// holds the block's largest ratio and is non-finite if any element is).
type Map struct {
	Tensor     string  `json:"tensor"`
	TensorRows int     `json:"tensor_rows"` // the tensor's rows (S) and columns
	TensorCols int     `json:"tensor_cols"`
	Rows       int     `json:"rows"` // cells
	Cols       int     `json:"cols"`
	RowStep    int     `json:"row_step"` // tensor rows per cell (1: exact)
	ColStep    int     `json:"col_step"`
	Offsets    []int32 `json:"offsets"`   // inclusive per-expert offsets in tensor rows
	RealRows   int     `json:"real_rows"` // tensor rows ≥ RealRows are the sentinel tail
	// Failed counts elements whose ratio exceeds 1 (or that are non-finite where a value is
	// known); NonFinite counts non-finite elements; MaxRatio is the largest finite ratio.
	Failed    int   `json:"failed"`
	NonFinite int   `json:"nonfinite"`
	MaxRatio  Float `json:"max_ratio"`
	// Ratio is base64 of little-endian float32 per cell, row-major: |got − center|/radius
	// against the end-to-end enclosure; 0 exact, +Inf outside a zero-width enclosure or
	// non-finite, NaN unconstrained.
	Ratio string `json:"ratio"`
	// NonFiniteMask is base64 of a bitmap per cell, row-major, least significant bit first.
	NonFiniteMask string `json:"nonfinite_mask"`
	// Signatures counts the elements where each buffer's poison survived.
	Signatures map[string]int `json:"signatures,omitempty"`
}

// MaxCells bounds a map's cells (about 1.4 MB of base64 per map).
const MaxCells = 1 << 18

// Decode returns the map's ratios and non-finite flags per cell.
func (m *Map) Decode() (ratio []float32, nonFinite []bool, err error) {
	n := m.Rows * m.Cols
	rb, err := base64.StdEncoding.DecodeString(m.Ratio)
	if err != nil || len(rb) != 4*n {
		return nil, nil, fmt.Errorf("nightly: map %s: ratio holds %d bytes, want %d (%v)", m.Tensor, len(rb), 4*n, err)
	}
	nb, err := base64.StdEncoding.DecodeString(m.NonFiniteMask)
	if err != nil || len(nb) != (n+7)/8 {
		return nil, nil, fmt.Errorf("nightly: map %s: non-finite mask holds %d bytes, want %d (%v)", m.Tensor, len(nb), (n+7)/8, err)
	}
	ratio = make([]float32, n)
	nonFinite = make([]bool, n)
	for i := range ratio {
		ratio[i] = math.Float32frombits(binary.LittleEndian.Uint32(rb[4*i:]))
		nonFinite[i] = nb[i/8]>>(i%8)&1 == 1
	}
	return ratio, nonFinite, nil
}

// encodeMap turns an oracle element map into a compact Map.
func encodeMap(em *oracle.ElementMap) Map {
	rs, cs := 1, 1
	for ((em.Rows+rs-1)/rs)*((em.Cols+cs-1)/cs) > MaxCells {
		if (em.Cols+cs-1)/cs >= (em.Rows+rs-1)/rs {
			cs *= 2
		} else {
			rs *= 2
		}
	}
	R, C := (em.Rows+rs-1)/rs, (em.Cols+cs-1)/cs
	ratio := make([]float32, R*C)
	for i := range ratio {
		ratio[i] = float32(math.NaN())
	}
	nf := make([]byte, (R*C+7)/8)
	m := Map{Tensor: em.Tensor.String(), TensorRows: em.Rows, TensorCols: em.Cols, Rows: R, Cols: C, RowStep: rs, ColStep: cs, Offsets: em.Offsets, RealRows: em.RealRows}
	sigs := map[string]int{}
	for r := 0; r < em.Rows; r++ {
		for c := 0; c < em.Cols; c++ {
			i := r*em.Cols + c
			cell := (r/rs)*C + c/cs
			q := em.Ratio[i]
			if em.NonFinite[i] {
				m.NonFinite++
				nf[cell/8] |= 1 << (cell % 8)
			}
			if em.Signature[i] != 0 {
				sigs[em.Signature[i].String()]++
			}
			if q > 1 || (em.NonFinite[i] && !math.IsNaN(q)) {
				m.Failed++
			}
			if !math.IsNaN(q) && !math.IsInf(q, 0) && q > float64(m.MaxRatio) {
				m.MaxRatio = Float(q)
			}
			if cur := ratio[cell]; math.IsNaN(float64(cur)) || (!math.IsNaN(q) && float32(q) > cur) {
				ratio[cell] = float32(q)
			}
		}
	}
	rb := make([]byte, 4*len(ratio))
	for i, v := range ratio {
		binary.LittleEndian.PutUint32(rb[4*i:], math.Float32bits(v))
	}
	m.Ratio = base64.StdEncoding.EncodeToString(rb)
	m.NonFiniteMask = base64.StdEncoding.EncodeToString(nf)
	if len(sigs) > 0 {
		m.Signatures = sigs
	}
	return m
}

// BuildArtifact runs the backend once on c (with faults, stage capture, signature poison),
// judges it, and keeps the maps of the worst stage tensor (the first failing stage, else the
// one with the most failing elements) and of the tensor with the most non-finite elements.
func BuildArtifact(ctx context.Context, b gpu.Backend, faults fault.Set, c *moe.Case) (*Artifact, error) {
	return BuildArtifactUnder(ctx, b, faults, gpu.ContractOf(b), c)
}

// BuildArtifactUnder is BuildArtifact judged under contract ct.
func BuildArtifactUnder(ctx context.Context, b gpu.Backend, faults fault.Set, ct contract.Contract, c *moe.Case) (*Artifact, error) {
	a := &Artifact{V: Version, Config: c.Config.String(), Poison: gpu.PoisonSignature.String()}
	res, err := fault.Run(ctx, b, c, gpu.RunOptions{Poison: gpu.PoisonSignature, PoisonSeed: 7, Stages: true}, faults)
	if err != nil {
		if ce, ok := gpu.AsCaseError(err); ok {
			a.FirstStage = triage.StageCrash.String()
			a.Note = "the backend could not finish the case: " + ce.Error()
			return a, nil
		}
		return nil, fmt.Errorf("nightly: artifact run: %w", err)
	}
	en, err := oracle.EncloseUnder(c, ct)
	if err != nil {
		return nil, err
	}
	v, err := oracle.Check(c, res, oracle.Options{Enclosure: en, Contract: ct})
	if err != nil {
		return nil, err
	}
	if st, f, _, ok := triage.FirstStage(v.Failures); ok {
		a.FirstStage, a.Where = st.String(), f.Worst.String()
	}
	if res.Stages == nil {
		a.Note = "the backend reported no stages: no element maps"
		return a, nil
	}
	ems, err := oracle.ElementMaps(c, res, en)
	if err != nil {
		return nil, err
	}
	var worst, nan *oracle.ElementMap
	worstFailed, nanCount := 0, 0
	for _, em := range ems {
		failed, nonFinite := 0, 0
		for i, q := range em.Ratio {
			if q > 1 || (em.NonFinite[i] && !math.IsNaN(q)) {
				failed++
			}
			if em.NonFinite[i] {
				nonFinite++
			}
		}
		if em.Tensor.Stage().String() == a.FirstStage && failed > 0 {
			worst, worstFailed = em, math.MaxInt
		}
		if failed > worstFailed {
			worst, worstFailed = em, failed
		}
		if nonFinite > nanCount {
			nan, nanCount = em, nonFinite
		}
	}
	if worst == nil && nan == nil {
		a.Note = "no stage tensor fails under signature poison (the failure is in an output, a contract or between runs)"
		return a, nil
	}
	if worst == nil {
		worst = nan
	}
	a.Worst = worst.Tensor.String()
	a.Maps = append(a.Maps, encodeMap(worst))
	if nan != nil {
		a.NaN = nan.Tensor.String()
		if nan != worst {
			a.Maps = append(a.Maps, encodeMap(nan))
		}
	}
	return a, nil
}

// Map returns the artifact's map of a tensor.
func (a *Artifact) Map(tensor string) *Map {
	for i := range a.Maps {
		if a.Maps[i].Tensor == tensor {
			return &a.Maps[i]
		}
	}
	return nil
}

// WriteArtifact writes an artifact file atomically.
func WriteArtifact(path string, a *Artifact) error {
	return WriteFile(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(a)
	})
}

// MaxArtifactBytes bounds an artifact file: at most one map per result and stage tensor
// (17), each of at most MaxCells cells (about 1.4 MB), fits in 32 MiB; twice that is the cap.
const MaxArtifactBytes = 64 << 20

// ReadArtifact reads an artifact file of at most MaxArtifactBytes; only regular files are
// read (a device or a pipe named as an artifact is refused).
func ReadArtifact(path string) (*Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nightly: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("nightly: %w", err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("nightly: artifact %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxArtifactBytes+1))
	if err != nil {
		return nil, fmt.Errorf("nightly: artifact %s: %w", path, err)
	}
	if len(b) > MaxArtifactBytes {
		return nil, fmt.Errorf("nightly: artifact %s is larger than the %d-byte limit of an artifact", path, MaxArtifactBytes)
	}
	var a Artifact
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("nightly: artifact %s: %w", path, err)
	}
	if a.V != Version {
		return nil, fmt.Errorf("nightly: artifact %s: schema version %d, this moecheck reads %d", path, a.V, Version)
	}
	return &a, nil
}

// artifactName turns a record id into a file name.
func artifactName(id string) string {
	r := strings.NewReplacer("/", "-", "\\", "-", ":", "-", " ", "_", "..", "_")
	return r.Replace(id) + ".json"
}
