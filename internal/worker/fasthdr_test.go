package worker

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// fastHeaders are result headers of every kind the Go worker writes, and a few it does not.
func fastHeaders(t testing.TB) [][]byte {
	var out [][]byte
	add := func(h Header) {
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, d := range moe.DTypes() {
		cfg := moe.Config{T: 3, H: 4, I: 2, E: 2, K: 2, DType: d, Bias: true}
		ts, _ := resultTensors(cfg, streamResult(cfg))
		add(Header{Type: TypeResult, ID: 7, Tensors: headers(ts)})
		add(Header{Type: TypeResult, Tensors: headers(ts[:1])}) // id 0: omitted
	}
	add(Header{Type: TypeResult, ID: 1 << 59, Tensors: []TensorHeader{{Name: "y", DType: "bf16", Shape: []int{}, Offset: -5, Bytes: 1<<59 + 3}}})
	add(Header{Type: TypeResult, ID: 1<<64 - 1, Tensors: []TensorHeader{{Name: "y", DType: "bf16", Shape: []int{1}}}}) // 20 digits: declined
	add(Header{Type: TypeResult, ID: 2, Tensors: []TensorHeader{{Name: "ü \"x\" \\", DType: "bf16", Shape: []int{1, -2, 3}}}})
	add(Header{Type: TypeResult, ID: 3, Tensors: []TensorHeader{{Name: "y", DType: "bf16"}}}) // shape null
	add(Header{Type: TypeResult, ID: 3, Triage: "text", Tensors: []TensorHeader{{Name: "y", DType: "bf16", Shape: []int{2}}}})
	add(Header{Type: TypeResult, ID: 4})
	add(Header{Type: TypeResult, ID: 6, Tensors: []TensorHeader{{Name: "h1", DType: "bf16", Shape: []int{8}, Offset: 4, Bytes: 6, Size: 16}, {Name: "y", DType: "bf16", Shape: []int{1}, Offset: 10, Bytes: 2}}}) // a zero tail
	add(Header{Type: TypeError, ID: 5, Kind: KindCrash, Detail: "x"})
	out = append(out, []byte(`{"type": "result", "id": 1, "tensors": []}`), []byte(`{"type":"result","id":01,"tensors":[]}`),
		[]byte(`{"type":"result","id":1,"tensors":[{"name":"y","dtype":"bf16","shape":[-0],"offset":0,"bytes":2}]}`),
		[]byte(`{"type":"result","id":1,"tensors":[{"name":"y","dtype":"bf16","shape":[2],"offset":0,"bytes":4}]} `))
	return out
}

// fastResult accepts the headers the Go worker writes (so its speed applies to every run) and
// decodes whatever it accepts exactly as encoding/json does.
func TestFastResult(t *testing.T) {
	accepted := 0
	for i, b := range fastHeaders(t) {
		h, ok := fastResult(b)
		if !ok {
			continue
		}
		accepted++
		var want Header
		if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(h, want) {
			t.Errorf("header %d %s: fast %+v, encoding/json %+v (%v)", i, b, h, want, err)
		}
	}
	if accepted < 8 {
		t.Errorf("fastResult accepted %d headers, want at least the 6 Go result headers, the wide one and the zero tail", accepted)
	}
	// Every header a streamed or written result frame carries takes the fast path.
	cfg := moe.Config{T: 5, H: 8, I: 4, E: 3, K: 2, DType: moe.BF16}
	for _, r := range []*gpu.Result{streamResult(cfg)} {
		f := EncodeResult(12, cfg, r)
		b, _ := json.Marshal(&f.Header)
		if _, ok := fastResult(b); !ok {
			t.Errorf("a Go result header declined: %s", b)
		}
	}
}

// FuzzFastResult: whatever fastResult accepts, encoding/json decodes without error to the
// same header.
func FuzzFastResult(f *testing.F) {
	for _, b := range fastHeaders(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := fastResult(b)
		if !ok {
			return
		}
		var want Header
		if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(h, want) {
			t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", b, h, want, err)
		}
	})
}
