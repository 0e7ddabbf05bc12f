package cuda

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// bitsOf is case c as a worker client sends it (moe.DType.PutBits), validated.
func bitsOf(t *testing.T, c *moe.Case) rawcase.Checked {
	t.Helper()
	k := rawcase.Encode(c)
	kc, err := rawcase.Validate(k, moe.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func putAll(in []input) ([]string, [][]byte) {
	var names []string
	var bs [][]byte
	for _, x := range in {
		b := make([]byte, x.n)
		x.put(b)
		names, bs = append(names, x.name), append(bs, b)
	}
	return names, bs
}

// The bits path uploads the same bytes, in the same buffers and order, as the float path
// uploads for the case those bits decode to, for every dtype and data mode, with and without
// biases and global routing, non-finite data (NaN payloads) included.
func TestBitsInputsMatchCaseInputs(t *testing.T) {
	for _, d := range moe.DTypes() {
		for _, mode := range moe.DataModes() {
			for _, bias := range []bool{false, true} {
				for _, ep := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/bias=%v/ep=%v", d, mode, bias, ep)
					cfg := moe.Config{T: 7, H: 16, I: 8, E: 3, K: 2, DType: d, Bias: bias}
					if ep {
						cfg.EP = moe.EP{World: 2, Rank: 1}
					}
					r, g, err := moe.RandomGlobalRouting(cfg, 9)
					if err != nil {
						t.Fatal(err)
					}
					c, err := moe.Generate(cfg, r, 10, mode)
					if err != nil {
						t.Fatal(err)
					}
					if ep {
						c.Global = g
					}
					c.NonFinite = true
					c.X[1], c.W1[2], c.DY[3] = math.NaN(), math.Inf(-1), -math.NaN()
					k := bitsOf(t, c)
					if k.Meta().X != nil {
						t.Fatalf("%s: meta holds tensors", name)
					}
					wn, wb := putAll(caseInputs(c))
					gn, gb := putAll(bitsInputs(k.Case()))
					if fmt.Sprint(gn) != fmt.Sprint(wn) {
						t.Fatalf("%s: inputs %v, want %v", name, gn, wn)
					}
					for i := range wb {
						if !bytes.Equal(gb[i], wb[i]) {
							t.Errorf("%s: input %s differs", name, wn[i])
						}
					}
				}
			}
		}
	}
}

// resultBits holds the downloads' bits, DRW gathered into slot order, and decodes to
// resultOf's result bit for bit (every bf16 and fp16 pattern; fp32 NaN payloads).
func TestResultBitsMatchesResultOf(t *testing.T) {
	for _, d := range moe.DTypes() {
		for _, stages := range []bool{false, true} {
			es := d.Bits() / 8
			rng := moe.NewRand(uint64(es))
			n := 1 << 16
			raw := func() []byte {
				b := make([]byte, n*es)
				for i := range n {
					if es == 2 {
						binary.LittleEndian.PutUint16(b[2*i:], uint16(i*7+int(rng.IntN(3))))
					} else {
						binary.LittleEndian.PutUint32(b[4*i:], uint32(rng.Uint64())|0x7f800000*uint32(i%2))
					}
				}
				return b
			}
			s := 300
			inv := make([]byte, 4*s)
			for i, j := range rng.Perm(s) {
				binary.LittleEndian.PutUint32(inv[4*i:], uint32(j))
			}
			got := map[string][]byte{"y": raw(), "dX": raw(), "dW1": raw(), "dW2": raw(), "d_rw": raw()[:s*es], "inv": inv}
			if stages {
				got["perm"], got["offs"], got["h1"], got["d_xs"] = inv, inv[:12], raw(), raw()
			}
			want := resultOf(d, s, stages, got)
			rb := resultBits(d, s, stages, got)
			if &rb.Tensor(moe.TensorY)[0] != &got["y"][0] {
				t.Errorf("%s: y was copied", d)
			}
			dec := rb.Decode(d)
			name := fmt.Sprintf("%s/stages=%v", d, stages)
			for _, tn := range append(moe.Outputs(), moe.StageTensors()...) {
				a, b := want.Tensor(tn), dec.Tensor(tn)
				if len(a) != len(b) || (a == nil) != (b == nil) {
					t.Fatalf("%s: %s has %d values, want %d", name, tn, len(b), len(a))
				}
				for i := range a {
					if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
						t.Fatalf("%s: %s[%d] = %#x, want %#x", name, tn, i, math.Float32bits(b[i]), math.Float32bits(a[i]))
					}
				}
			}
			if (want.Stages == nil) != (dec.Stages == nil) {
				t.Fatalf("%s: stages %v, want %v", name, dec.Stages != nil, want.Stages != nil)
			}
			if want.Stages != nil && (fmt.Sprint(want.Stages.Perm) != fmt.Sprint(dec.Stages.Perm) || fmt.Sprint(want.Stages.Offsets) != fmt.Sprint(dec.Stages.Offsets)) {
				t.Fatalf("%s: plan differs", name)
			}
		}
	}
}
