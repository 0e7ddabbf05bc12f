package worker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/moecheck/moecheck/internal/hugemem"
)

// Version is the protocol version this package speaks. A worker announces its version in
// its hello frame; the client accepts MinVersion through Version and refuses any other.
// Version 2 adds the hello's capabilities, the error kinds raised and unsupported, the
// result's triage text and snake_case case keys (t, h, i, e, k); a version-1 worker gets the
// version-1 keys (T, H, I, E, K).
const Version = 2

// MinVersion is the oldest protocol version the client still serves.
const MinVersion = 1

// Proto is the protocol name in the hello frame.
const Proto = "moecheck-worker"

// Frame size limits: a header is a small JSON object; a payload holds one case's tensors
// (moe.DefaultLimits() allow 2^30 values, 4 GiB as fp32).
const (
	MaxHeaderBytes  = 1 << 20
	MaxPayloadBytes = 1 << 34
)

// Message types.
const (
	TypeHello  = "hello"  // worker → client, first frame
	TypeRun    = "run"    // client → worker: a case and its options
	TypeResult = "result" // worker → client: the result of a run
	TypeError  = "error"  // worker → client: the run produced no result (Kind says why)
	TypeBye    = "bye"    // client → worker: exit cleanly
	// TypeForget (optional, any version: to a worker whose hello declares forget): drop what
	// the lane carries from the cases before (forget.go); answered by TypeForgot.
	TypeForget = "forget"
	TypeForgot = "forgot" // worker → client: the lane forgot (the reply to a forget request)
)

// Error kinds of an error frame. crash, timeout and oom are case errors (gpu.CaseError);
// bad_request and internal are not.
const (
	KindCrash      = "crash"
	KindTimeout    = "timeout"
	KindOOM        = "oom"
	KindBadRequest = "bad_request"
	KindInternal   = "internal"
	// KindRaised (version 2): the path raised an exception; the detail has it, the header's
	// traceback field its traceback. A case error; the worker stays alive.
	KindRaised = "raised"
	// KindUnsupported (version 2): the case is outside the worker's capabilities.
	KindUnsupported = "unsupported"
)

// Header is the JSON header of every frame; fields not used by a message type are omitted.
type Header struct {
	Type    string         `json:"type"`
	Proto   string         `json:"proto,omitempty"`   // hello
	Version int            `json:"version,omitempty"` // hello
	Backend string         `json:"backend,omitempty"` // hello: the backend's Name
	Device  string         `json:"device,omitempty"`  // hello: what the worker runs on
	ID      uint64         `json:"id,omitempty"`      // run, result, error: request id
	Case    *CaseHeader    `json:"case,omitempty"`    // run
	Options *OptionsHeader `json:"options,omitempty"` // run
	Tensors []TensorHeader `json:"tensors,omitempty"` // run, result: the payload's layout
	Kind    string         `json:"kind,omitempty"`    // error
	Detail  string         `json:"detail,omitempty"`  // error
	// Version 2.
	Capabilities *Capabilities `json:"capabilities,omitempty"` // hello: what the worker supports (nil: everything)
	Traceback    string        `json:"traceback,omitempty"`    // error of kind raised
	Triage       string        `json:"triage,omitempty"`       // result: op-level triage, when asked for
	// Lanes (hello, optional): how many lanes the worker serves, when the client asked for
	// several (LanesEnv); omitted by a worker of one lane.
	Lanes int `json:"lanes,omitempty"`
	// SameCase (optional, any version): in a hello, the worker accepts run requests that
	// reuse the lane's previous case; in a run request, the request has no tensors and runs
	// the case of the lane's previous run request, whose case the header repeats (a Go client
	// sends it only to a worker that declared it, after a result for that case).
	SameCase bool `json:"same_case,omitempty"`
	// ZeroTails (optional, any version): in a hello, the worker can leave the trailing zero
	// bytes of a result's float tensors out of the payload (TensorHeader.Size, zerotail.go);
	// in a run request, the client reads such results (a Go client asks only a worker that
	// declared it).
	ZeroTails bool `json:"zero_tails,omitempty"`
	// Forget (optional, any version): in a hello, the worker answers forget requests (a Go
	// client sends them only to a worker that declared it, forget.go).
	Forget bool `json:"forget,omitempty"`
}

// CaseHeader is a case's configuration (moe.Config and the Case flags). Its keys are
// snake_case (t, h, i, e, k, ep_world, ...); Legacy writes the version-1 keys T, H, I, E, K.
// Decoding accepts both (encoding/json matches keys case-insensitively).
type CaseHeader struct {
	T                   int    `json:"t"`
	H                   int    `json:"h"`
	I                   int    `json:"i"`
	E                   int    `json:"e"`
	K                   int    `json:"k"`
	EPWorld             int    `json:"ep_world"`
	EPRank              int    `json:"ep_rank"`
	Act                 string `json:"act"`    // swiglu | gptoss
	Layout              string `json:"layout"` // standard | transposed
	DType               string `json:"dtype"`  // bf16 | fp16 | fp32
	Bias                bool   `json:"bias"`
	NonFinite           bool   `json:"non_finite"`
	Global              bool   `json:"global"` // global routing tensors are present
	KeepSentinelWeights bool   `json:"keep_sentinel_weights"`
	// Legacy: encode with the version-1 keys (for a version-1 worker). Not on the wire.
	Legacy bool `json:"-"`
}

// caseHeaderV1 is CaseHeader with the version-1 keys.
type caseHeaderV1 struct {
	T, H, I, E, K       int
	EPWorld             int    `json:"ep_world"`
	EPRank              int    `json:"ep_rank"`
	Act                 string `json:"act"`
	Layout              string `json:"layout"`
	DType               string `json:"dtype"`
	Bias                bool   `json:"bias"`
	NonFinite           bool   `json:"non_finite"`
	Global              bool   `json:"global"`
	KeepSentinelWeights bool   `json:"keep_sentinel_weights"`
}

// MarshalJSON writes snake_case keys, or the version-1 keys when Legacy is set.
func (c CaseHeader) MarshalJSON() ([]byte, error) {
	if c.Legacy {
		return json.Marshal(caseHeaderV1{c.T, c.H, c.I, c.E, c.K, c.EPWorld, c.EPRank, c.Act, c.Layout, c.DType, c.Bias, c.NonFinite, c.Global, c.KeepSentinelWeights})
	}
	type plain CaseHeader
	return json.Marshal(plain(c))
}

// OptionsHeader is gpu.RunOptions.
type OptionsHeader struct {
	Poison     string   `json:"poison"`
	PoisonSeed uint64   `json:"poison_seed"`
	Faults     []string `json:"faults"`
	Stages     bool     `json:"stages"`
	Triage     bool     `json:"triage,omitempty"` // version 2: record ops and return triage text
}

// TensorHeader places one tensor in the payload: Bytes bytes at Offset, little-endian
// elements of DType (bf16, fp16, fp32: storage bits; i32, i64).
type TensorHeader struct {
	Name   string `json:"name"`
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	// Size (a result's float tensor, in reply to a zero_tails request): the tensor's whole
	// size in bytes, of which the payload holds the first Bytes; the other Size − Bytes are
	// zero. 0: the payload holds the whole tensor (Bytes).
	Size int64 `json:"size,omitempty"`
}

// Frame is one message: its header and its payload.
type Frame struct {
	Header  Header
	Payload []byte
}

// WriteFrame writes f to w.
func WriteFrame(w io.Writer, f *Frame) error {
	h, err := json.Marshal(&f.Header)
	if err != nil {
		return fmt.Errorf("worker: encode header: %w", err)
	}
	if len(h) > MaxHeaderBytes {
		return fmt.Errorf("worker: header of %d bytes exceeds the limit %d", len(h), MaxHeaderBytes)
	}
	if int64(len(f.Payload)) > MaxPayloadBytes {
		return fmt.Errorf("worker: payload of %d bytes exceeds the limit %d", len(f.Payload), int64(MaxPayloadBytes))
	}
	// One write of the whole frame when the payload is small (a pipe then wakes the reader
	// once); else the head, then the payload as it is (no copy of it).
	b := make([]byte, 0, 12+len(h)+min(len(f.Payload), inlinePayload))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	b = append(b, h...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(f.Payload)))
	inline := len(f.Payload) <= inlinePayload
	if inline {
		b = append(b, f.Payload...)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("worker: write frame: %w", err)
	}
	if !inline {
		if _, err := w.Write(f.Payload); err != nil {
			return fmt.Errorf("worker: write frame: %w", err)
		}
	}
	return nil
}

// inlinePayload is the largest payload WriteFrame copies behind the header to write the
// frame at once.
const inlinePayload = 64 << 10

// ErrMalformed wraps every error ReadFrame returns for bytes that are not a frame.
var ErrMalformed = errors.New("worker: malformed frame")

// ReadFrame reads one frame. It returns io.EOF when r ends cleanly before a frame and
// io.ErrUnexpectedEOF when it ends inside one. The payload may not extend past the tensors
// the header lists (a frame without tensors has none), and it is read as it arrives, so a
// frame's memory is bounded by its declared tensors and by the bytes actually sent.
func ReadFrame(r io.Reader) (*Frame, error) { return readFrame(r, MaxPayloadBytes) }

// readFrame is ReadFrame with a payload limit of maxPayload bytes (at most MaxPayloadBytes).
func readFrame(r io.Reader, maxPayload int64) (*Frame, error) {
	f, pl, err := readHeader(r, maxPayload)
	if err != nil {
		return nil, err
	}
	if f.Payload, err = readN(r, pl); err != nil {
		return nil, unexpected(err)
	}
	return f, nil
}

// readHeader reads a frame up to its payload: the header and the payload's length pl,
// checked against maxPayload and against the extent of the tensors the header lists.
func readHeader(r io.Reader, maxPayload int64) (_ *Frame, pl int64, _ error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:4]); err != nil {
		return nil, 0, err
	}
	hl := binary.LittleEndian.Uint32(n[:4])
	if hl == 0 || hl > MaxHeaderBytes {
		return nil, 0, fmt.Errorf("%w: header length %d outside [1, %d]", ErrMalformed, hl, MaxHeaderBytes)
	}
	hb, err := readN(r, int64(hl)) // bounded by MaxHeaderBytes
	if err != nil {
		return nil, 0, unexpected(err)
	}
	f := &Frame{}
	if h, ok := fastResult(hb); ok {
		f.Header = h
	} else if err := json.Unmarshal(hb, &f.Header); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, 0, unexpected(err)
	}
	upl := binary.LittleEndian.Uint64(n[:])
	if upl > uint64(maxPayload) {
		return nil, 0, fmt.Errorf("%w: payload length %d exceeds the limit %d", ErrMalformed, upl, maxPayload)
	}
	pl = int64(upl)
	// With every placement valid, the payload may not extend past the tensors. A frame with a
	// bad placement is still read (its payload as it arrives), so that the decoder names the
	// tensor and a worker can answer bad_request to it.
	if ext, ok := extent(f.Header.Tensors); ok && pl > ext {
		return nil, 0, fmt.Errorf("%w: payload length %d exceeds the %d bytes its %d tensor(s) span", ErrMalformed, pl, ext, len(f.Header.Tensors))
	}
	return f, pl, nil
}

// extent is the end of the furthest tensor of a header; ok is false when a placement is
// negative, overflows, or ends past MaxPayloadBytes.
func extent(ts []TensorHeader) (end int64, ok bool) {
	for _, t := range ts {
		if t.Offset < 0 || t.Bytes < 0 || t.Offset > MaxPayloadBytes || t.Bytes > MaxPayloadBytes-t.Offset {
			return 0, false
		}
		end = max(end, t.Offset+t.Bytes)
	}
	return end, true
}

// readN reads exactly n bytes, growing its buffer as bytes arrive (at most doubling) past its
// first 16 MiB, so a peer that declares more than it sends costs no more than 16 MiB or
// twice what it sent; a frame of the common sizes (a small case's request: kilobytes to
// megabytes) is read into one buffer of its size, without regrowth and its copies.
func readN(r io.Reader, n int64) ([]byte, error) {
	const chunk = 16 << 20
	b := make([]byte, 0, min(n, chunk))
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			nb := hugemem.Bytes(int(min(n, max(2*int64(cap(b)), chunk))))[:len(b)]
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
