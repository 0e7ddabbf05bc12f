package worker

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// A same_case request runs the lane's previous case: its replies are byte for byte those of
// the full requests, on the bits path and the float path; one that has no case to reuse
// (first, after a refused request), names another case or carries tensors is a bad_request.
func TestServeSameCase(t *testing.T) {
	c := testCase(t, moe.FP16, true, true)
	other := testCase(t, moe.BF16, false, false)
	opts := []gpu.RunOptions{{Poison: gpu.PoisonNaN, Stages: true}, {Poison: gpu.PoisonZeros}, {Poison: gpu.PoisonSignature, PoisonSeed: 5, Stages: true}}
	enc := func(cs *moe.Case) *encodedCase {
		e, err := encodeCase(cs)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e, eo := enc(c), enc(other)
	bad := e.request(9, opts[0], 0)
	bad.Payload = append([]byte(nil), bad.Payload...)
	plantWire(bad, "x", 0)
	withTensors := e.sameRequest(7, opts[0], 0)
	withTensors.Header.Tensors = e.tensors[:1]
	withTensors.Payload = e.payload[:e.tensors[0].Bytes]
	for _, b := range []gpu.Backend{bitsBackend{}, floatTwin{}} {
		same := []*Frame{e.sameRequest(1, opts[0], 0), e.request(2, opts[0], 0), e.sameRequest(3, opts[1], 0), e.sameRequest(4, opts[2], 0),
			withTensors, e.request(8, opts[1], 0), eo.sameRequest(5, opts[0], 0), bad, e.sameRequest(10, opts[0], 0)}
		full := []*Frame{e.sameRequest(1, opts[0], 0), e.request(2, opts[0], 0), e.request(3, opts[1], 0), e.request(4, opts[2], 0)}
		got, want := serveAll(t, b, same), serveAll(t, b, full)
		if len(got) != len(same) {
			t.Fatalf("%T: %d replies to %d requests", b, len(got), len(same))
		}
		for i := 1; i < 4; i++ {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("%T: reply %d to the same_case request differs from the full request's", b, i+1)
			}
		}
		for _, i := range []int{0, 4, 6, 7, 8} {
			f, err := ReadFrame(bytes.NewReader(got[i]))
			if err != nil {
				t.Fatal(err)
			}
			if f.Header.Type != TypeError || f.Header.Kind != KindBadRequest {
				t.Errorf("%T: reply to request %d is %s %s, want a bad_request", b, f.Header.ID, f.Header.Type, f.Header.Kind)
			}
		}
		for i, want := range map[int]string{0: "holds no case", 4: "with 1 tensors", 6: "same_case request for case", 8: "holds no case"} {
			f, _ := ReadFrame(bytes.NewReader(got[i]))
			if !strings.Contains(f.Header.Detail, want) {
				t.Errorf("%T: reply %d says %q, want it to mention %q", b, i+1, f.Header.Detail, want)
			}
		}
		if f, _ := ReadFrame(bytes.NewReader(got[5])); f.Header.Type != TypeResult {
			t.Errorf("%T: a full request after a refused same_case got %s", b, f.Header.Type)
		}
	}
	if _, _, _, err := DecodeRequest(e.sameRequest(1, opts[0], 0)); err == nil || !strings.Contains(err.Error(), "same_case") {
		t.Errorf("DecodeRequest of a same_case request: %v", err)
	}
}

// A client lane sends a case's tensors once for its runs in a row, to a worker that
// declared same_case, and whole again after a change, a restart or a case error.
func TestClientSameCase(t *testing.T) {
	b := helper(t, time.Minute)
	cl := b.(*client)
	if !cl.g.sameCase {
		t.Fatal("the Go worker does not declare same_case")
	}
	c := testCase(t, moe.BF16, true, true)
	run := func(name string, o gpu.RunOptions, wantSames int, wantErr bool) {
		t.Helper()
		r, err := b.Run(context.Background(), c, o)
		if (err != nil) != wantErr {
			t.Fatalf("%s: error %v", name, err)
		}
		if err == nil && !bitsEqual(r.Y, f32s(c.X)) {
			t.Fatalf("%s: the worker ran another case", name)
		}
		if cl.sames != wantSames {
			t.Fatalf("%s: %d same_case requests, want %d", name, cl.sames, wantSames)
		}
	}
	o := gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true}
	run("first", o, 0, false)
	run("second", o, 1, false)
	run("third", gpu.RunOptions{Poison: gpu.PoisonZeros}, 2, false)
	c.X[0] = 3
	run("changed", o, 2, false)
	run("changed again", o, 3, false)
	run("oom", gpu.RunOptions{PoisonSeed: seedOOM}, 4, true) // a case error: nothing held after it
	run("after oom", o, 4, false)
	run("crash", gpu.RunOptions{PoisonSeed: seedReported}, 5, true) // the worker exits
	run("after the restart", o, 5, false)
	run("then", o, 6, false)
	// A worker that no longer holds the case answers bad_request: the lane sends it whole.
	cl.held.enc = cl.cache.enc
	cl.g.mu.Lock()
	p := cl.g.proc
	cl.g.mu.Unlock()
	cl.held.p = p
	if err := WriteFrame(p.lanes[0].in, &Frame{Header: Header{Type: TypeRun, ID: 999, Case: &CaseHeader{}, Options: &OptionsHeader{}, SameCase: true}}); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFrame(p.lanes[0].out); err != nil || f.Header.Kind != KindBadRequest {
		t.Fatalf("a stray same_case: %v %+v", err, f)
	}
	run("after the worker dropped the case", o, 7, false)
}
