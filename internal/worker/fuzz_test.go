package worker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// rawFrame builds a frame's bytes from a header and a declared payload length, with the
// payload bytes actually sent (which may be fewer than declared).
func rawFrame(t testing.TB, h Header, declared uint64, payload []byte) []byte {
	t.Helper()
	hb, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(len(hb)))
	b.Write(hb)
	binary.Write(&b, binary.LittleEndian, declared)
	b.Write(payload)
	return b.Bytes()
}

// fuzzCfg is the configuration results are decoded against in FuzzWorkerFrame.
var fuzzCfg = moe.Config{T: 2, H: 4, I: 2, E: 2, K: 1, DType: moe.BF16}

// FuzzWorkerFrame feeds arbitrary bytes to the frame codec in both directions: whatever
// ReadFrame accepts holds no more payload than its tensors declare; a frame that decodes as a
// request or a result re-encodes to a frame that decodes to the same value. Nothing panics.
func FuzzWorkerFrame(f *testing.F) {
	c := testCase(f, moe.FP16, true, true)
	req, err := EncodeRequest(1, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}, 0)
	if err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	WriteFrame(&b, req)
	f.Add(b.Bytes())
	rc, err := moe.Generate(fuzzCfg, moe.Routing{IDs: []int32{0, 1}, Weights: []float64{1, 1}}, 3, moe.Normal)
	if err != nil {
		f.Fatal(err)
	}
	b.Reset()
	WriteFrame(&b, EncodeResult(2, fuzzCfg, fakeResult(rc)))
	f.Add(b.Bytes())
	f.Add(rawFrame(f, Header{Type: TypeResult, ID: 1, Tensors: []TensorHeader{{Name: "y", DType: "bf16", Shape: []int{8}, Offset: 1<<63 - 248, Bytes: 256}}}, 16, make([]byte, 16)))
	f.Add(rawFrame(f, Header{Type: TypeHello, Proto: Proto, Version: Version}, 1<<34, nil))
	// a result with a zero tail (zerotail.go): y sends 3 of its 8 elements
	f.Add(rawFrame(f, Header{Type: TypeResult, ID: 3, Tensors: []TensorHeader{{Name: "y", DType: "bf16", Shape: []int{8}, Offset: 0, Bytes: 6, Size: 16}}}, 6, make([]byte, 6)))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ReadFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		if ext, ok := extent(fr.Header.Tensors); ok && int64(cap(fr.Payload)) > ext {
			t.Fatalf("payload buffer of %d bytes for tensors spanning %d", cap(fr.Payload), ext)
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, fr); err != nil {
			t.Fatalf("re-encoding an accepted frame: %v", err)
		}
		back, err := ReadFrame(&out)
		if err != nil {
			t.Fatalf("reading a re-encoded frame: %v", err)
		}
		if !bytes.Equal(back.Payload, fr.Payload) {
			t.Fatal("payload changed in the round trip")
		}
		if int64(cap(fr.Payload)) > int64(len(data)) {
			t.Fatalf("payload buffer of %d bytes from %d bytes of input", cap(fr.Payload), len(data))
		}
		// The bits path accepts exactly the requests the decoded path accepts, with the
		// same error and the same options (it reads the same payload bytes).
		_, bo, bfs, berr := decodeBits(fr)
		if cs, o, fs, err := DecodeRequest(fr); (err == nil) != (berr == nil) || err != nil && err.Error() != berr.Error() {
			t.Fatalf("decodeBits: %v; DecodeRequest: %v", berr, err)
		} else if err == nil && (bo != o || bfs != fs || cs == nil) {
			t.Fatal("decodeBits and DecodeRequest read other options")
		}
		if cs, o, fs, err := DecodeRequest(fr); err == nil {
			f2, err := EncodeRequest(fr.Header.ID, cs, o, fs)
			if err != nil {
				t.Fatalf("re-encoding a decoded request: %v", err)
			}
			cs2, o2, fs2, err := DecodeRequest(f2)
			if err != nil {
				t.Fatalf("decoding a re-encoded request: %v", err)
			}
			if o2 != o || fs2 != fs || fmt.Sprint(cs2) != fmt.Sprint(cs) {
				t.Fatal("request changed in the round trip")
			}
		}
		if r, err := DecodeResult(fr, fuzzCfg); err == nil {
			r2, err := DecodeResult(EncodeResult(fr.Header.ID, fuzzCfg, r), fuzzCfg)
			if err != nil {
				t.Fatalf("decoding a re-encoded result: %v", err)
			}
			for i, p := range [][2][]float32{{r.Y, r2.Y}, {r.DX, r2.DX}, {r.DW1, r2.DW1}, {r.DW2, r2.DW2}, {r.DRW, r2.DRW}} {
				if !bitsEqual(p[0], p[1]) {
					t.Fatalf("result tensor %d changed in the round trip", i)
				}
			}
		}
	})
}
