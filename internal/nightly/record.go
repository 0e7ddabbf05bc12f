package nightly

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/moecheck/moecheck/oracle"
)

// Version is the results schema version written in every record's "v".
const Version = 1

// Record types.
const (
	TypeStart = "start" // a run (or a resumed run) began: Run holds its parameters
	TypeCase  = "case"  // one item's result
	TypeEnd   = "end"   // the run finished: Summary holds the totals over the whole file
)

// Item kinds.
const (
	KindCorpus = "corpus"
	KindPreset = "preset"
	KindRandom = "random"
)

// Statuses of a case record.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Record is one line of a results file.
type Record struct {
	V    int       `json:"v"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`

	// case records
	ID         string            `json:"id,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Index      *int              `json:"index,omitempty"` // random case index
	Status     string            `json:"status,omitempty"`
	Config     string            `json:"config,omitempty"`     // moe.Config of the case
	Spec       string            `json:"spec,omitempty"`       // the generating spec (random cases)
	Shrunk     string            `json:"shrunk,omitempty"`     // the shrunk spec of a failure
	Source     string            `json:"source,omitempty"`     // corpus file or preset
	Properties []string          `json:"properties,omitempty"` // properties that ran, in order
	Property   string            `json:"property,omitempty"`   // the failing property
	Message    string            `json:"message,omitempty"`    // what broke, or why skipped
	FirstStage string            `json:"first_stage,omitempty"`
	CaseError  string            `json:"case_error,omitempty"` // crash, timeout or oom
	Failures   []FailureRecord   `json:"failures,omitempty"`
	MaxRatio   Float             `json:"max_ratio,omitempty"`
	ElapsedMS  float64           `json:"elapsed_ms,omitempty"`
	Repro      string            `json:"repro,omitempty"`
	Artifact   string            `json:"artifact,omitempty"` // relative to the results file's directory
	Extra      map[string]string `json:"extra,omitempty"`
	// Sample (a run with Options.Sample): the verdict was judged on a sample, not the whole
	// case (sample.go). Absent: judged whole.
	Sample *SampleRecord `json:"sample,omitempty"`

	Run     *RunInfo `json:"run,omitempty"`
	Summary *Summary `json:"summary,omitempty"`
	// Sharpness (end records of a run with Options.Sharpness): the oracle's sharpness pooled
	// over this invocation's random cases.
	Sharpness *SharpnessRecord `json:"sharpness,omitempty"`
}

// RunInfo is the start record's description of a run.
type RunInfo struct {
	Backend    string   `json:"backend"`
	Faults     string   `json:"faults,omitempty"`
	NoStages   bool     `json:"no_stages,omitempty"`
	Seed       uint64   `json:"seed"`
	Cases      int      `json:"cases,omitempty"`
	BudgetS    float64  `json:"budget_s,omitempty"`
	Shard      int      `json:"shard"`
	Shards     int      `json:"shards"`
	Corpus     int      `json:"corpus"`
	Presets    []string `json:"presets,omitempty"`
	Properties []string `json:"properties,omitempty"`
	Resumed    bool     `json:"resumed,omitempty"`
	// Flags are the command line's run-defining flags (name → value, as Options.Flags gave
	// them), so that a bare resume can restore them.
	Flags map[string]string `json:"flags,omitempty"`
	Start int               `json:"start,omitempty"` // first random index of this invocation
	// Contract is the path contract the run judged under (the backend's, or --contract's).
	Contract string `json:"contract,omitempty"`
	// Sample is the sampled check every stage-local judgement of the run used (fraction and
	// seed; Options.Sample); absent for full checks.
	Sample *SampleRecord `json:"sample,omitempty"`
}

// FailureRecord is one oracle failure, flattened.
type FailureRecord struct {
	Check     string `json:"check"`
	Tensor    string `json:"tensor"`
	Count     int    `json:"count"`
	Where     string `json:"where"`
	Token     int    `json:"token"`
	Slot      int    `json:"slot"`
	Expert    int    `json:"expert"`
	SortedRow int    `json:"sorted_row"`
	Sentinel  bool   `json:"sentinel,omitempty"`
	Buffer    string `json:"buffer,omitempty"`
	Got       Float  `json:"got"`
	Want      Float  `json:"want"`
	Bound     Float  `json:"bound"`
	Ratio     Float  `json:"ratio"`
	Detail    string `json:"detail,omitempty"`
}

// failureRecord flattens an oracle failure.
func failureRecord(f oracle.Failure) FailureRecord {
	buf := ""
	if f.Worst.Buffer != 0 {
		buf = f.Worst.Buffer.String()
	}
	return FailureRecord{Check: f.Check, Tensor: f.TensorName(), Count: f.Count, Where: f.Worst.String(),
		Token: f.Worst.Token, Slot: f.Worst.Slot, Expert: f.Worst.Expert, SortedRow: f.Worst.SortedRow,
		Sentinel: f.Worst.Sentinel, Buffer: buf,
		Got: Float(f.Got), Want: Float(f.Want), Bound: Float(f.Bound), Ratio: Float(f.Ratio), Detail: f.Detail}
}

// Summary totals the case records of a results file (the last record of each id counts).
type Summary struct {
	Total    int                `json:"total"`
	Pass     int                `json:"pass"`
	Fail     int                `json:"fail"`
	Skip     int                `json:"skip"`
	Sampled  int                `json:"sampled,omitempty"` // passes judged on a sample (their record has "sample")
	ByKind   map[string]*Counts `json:"by_kind"`
	Failed   []string           `json:"failed,omitempty"` // ids of failing items, in file order
	ElapsedS float64            `json:"elapsed_s"`        // sum of the case records' times
}

// Counts are the totals of one kind.
type Counts struct {
	Total int `json:"total"`
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Skip  int `json:"skip"`
}

// Summarize totals case records, keeping the last record of each id.
func Summarize(recs []Record) *Summary {
	s := &Summary{ByKind: map[string]*Counts{}}
	for _, r := range Cases(recs) {
		c := s.ByKind[r.Kind]
		if c == nil {
			c = &Counts{}
			s.ByKind[r.Kind] = c
		}
		s.Total++
		c.Total++
		s.ElapsedS += r.ElapsedMS / 1000
		switch r.Status {
		case StatusPass:
			s.Pass++
			c.Pass++
			if r.Sample != nil {
				s.Sampled++
			}
		case StatusFail:
			s.Fail++
			c.Fail++
			s.Failed = append(s.Failed, r.ID)
		default:
			s.Skip++
			c.Skip++
		}
	}
	return s
}

// Cases returns the case records, one per id (the last one written), in the order of each
// id's first appearance.
func Cases(recs []Record) []Record {
	at := map[string]int{}
	var out []Record
	for _, r := range recs {
		if r.Type != TypeCase {
			continue
		}
		if i, ok := at[r.ID]; ok {
			out[i] = r
			continue
		}
		at[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// Float is a float64 that survives JSON: NaN and ±Inf are written as the strings "NaN",
// "+Inf" and "-Inf" (JSON numbers cannot hold them) and read back.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return []byte(`"NaN"`), nil
	case math.IsInf(x, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(x, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = Float(math.NaN())
		return nil
	case `"+Inf"`, `"Inf"`:
		*f = Float(math.Inf(1))
		return nil
	case `"-Inf"`:
		*f = Float(math.Inf(-1))
		return nil
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("nightly: bad number %s", b)
	}
	*f = Float(x)
	return nil
}

// MarshalLine encodes a record as one JSON line (with its newline).
func MarshalLine(r Record) ([]byte, error) {
	r.V = Version
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("nightly: encoding record %s: %w", r.ID, err)
	}
	return b.Bytes(), nil
}

// MaxLineBytes bounds one line of a results file. Records are small (failures are capped at
// 16, messages carry at most a worker's 8 KiB stderr tail): a longer line is not ours.
const MaxLineBytes = 4 << 20

// ReadResults reads a results file. A last line without its newline (a run killed while
// writing it) is dropped and reported by complete = false with the byte length of the
// complete lines; any other malformed line, and a line longer than MaxLineBytes, is an error
// naming its line number.
func ReadResults(r io.Reader) (recs []Record, good int64, complete bool, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	complete = true
	for line := 1; ; line++ {
		b, err := readLine(br, MaxLineBytes)
		if errors.Is(err, errLong) {
			return recs, good, false, fmt.Errorf("nightly: results line %d is longer than the %d-byte limit of a record", line, MaxLineBytes)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			complete = false // truncated tail: ignore it
			break
		}
		if len(b) > 0 {
			if len(bytes.TrimSpace(b)) > 0 {
				var rec Record
				if err := json.Unmarshal(b, &rec); err != nil {
					return recs, good, false, fmt.Errorf("nightly: results line %d: %w", line, err)
				}
				if rec.V != Version {
					return recs, good, false, fmt.Errorf("nightly: results line %d: schema version %d, this moecheck reads %d", line, rec.V, Version)
				}
				recs = append(recs, rec)
			}
			good += int64(len(b))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return recs, good, false, fmt.Errorf("nightly: reading results: %w", err)
		}
	}
	return recs, good, complete, nil
}

var errLong = errors.New("line too long")

// readLine is bufio.Reader.ReadBytes('\n') that gives up (errLong) past max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(out)+len(b) > max {
			return nil, errLong
		}
		out = append(out, b...)
		if err != bufio.ErrBufferFull {
			return out, err
		}
	}
}

// SharpnessRecord is the oracle's sharpness pooled over the random cases of one invocation
// (oracle.SharpnessPool): per result tensor, how many elements are unconstrained (and how
// many of those have a float64 reference out of the dtype's range), how many are wide
// (radius above a tenth of the tensor's RMS), and the median and p99 of radius ÷ |reference|.
type SharpnessRecord struct {
	Contract string                  `json:"contract"`
	Cases    int                     `json:"cases"`
	Tensors  []TensorSharpnessRecord `json:"tensors"`
}

// TensorSharpnessRecord is one tensor's line of a SharpnessRecord.
type TensorSharpnessRecord struct {
	Tensor        string `json:"tensor"`
	N             int    `json:"n"`
	Unconstrained int    `json:"unconstrained"`
	RefOutOfRange int    `json:"ref_out_of_range"`
	Wide          int    `json:"wide"`
	Median        Float  `json:"median"`
	P99           Float  `json:"p99"`
}

func sharpnessRecord(ct string, p *oracle.SharpnessPool) *SharpnessRecord {
	sr := &SharpnessRecord{Contract: ct, Cases: p.Cases}
	for _, t := range p.Tensors() {
		sr.Tensors = append(sr.Tensors, TensorSharpnessRecord{Tensor: t.Tensor.String(), N: t.N, Unconstrained: t.Unconstrained,
			RefOutOfRange: t.RefOutOfRange, Wide: t.Wide, Median: Float(t.Median()), P99: Float(t.P99())})
	}
	return sr
}
