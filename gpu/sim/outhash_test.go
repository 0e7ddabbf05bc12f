package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

var update = flag.Bool("update", false, "rewrite testdata/outputs.sha256 from this build's outputs")

// TestOutputsHash guards every bit the sim produces, NaN payloads included, across changes
// meant to be speed-only: the SHA-256 of the outputs and stages of 120 random cases under
// every poison policy and 11 fault sets (one Backend per set, so Stale and the stateful
// faults see the sequence; every second run with stages, every third case's results
// recycled) must equal testdata/outputs.sha256. Where two NaNs meet, which payload survives
// follows the compiler's operand order (x86 keeps the first operand's): reshaping the
// elementwise loops has changed it (README, per core fourth round). The golden file is this
// machine's (amd64 with AVX2, no race detector, whose instrumentation reorders operands);
// other builds skip. A deliberate change of the sim's numerics rewrites it with -update.
func TestOutputsHash(t *testing.T) {
	if raceBuild || runtime.GOARCH != "amd64" || !vecKernels {
		t.Skip("the golden hash is of amd64 with AVX2 kernels, without the race detector")
	}
	sets := []string{"", "stale-empty-wgrad", "tail-stale-unmasked", "nondeterministic-sum", "accum-in-dtype",
		"no-mask-up-dgrad,combine-in-dtype", "neighbour-weights", "no-mask-down-dgrad", "gate-up-swapped",
		"mask-after-weight,sentinel-wrap", "clamp-sentinel,zero-token-row"}
	var lines []string
	for _, fs := range sets {
		set, err := fault.ParseSet(fs)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		put := func(v []float32) {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(len(v)))
			h.Write(b[:])
			for _, x := range v {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
				h.Write(b[:])
			}
		}
		b := New(Options{Workers: 1})
		for i := uint64(0); i < 120; i++ {
			c := makeCase(t, randomConfig(i), routingKind(i%uint64(numRoutingKinds)), moe.DataModes()[i/7%uint64(len(moe.DataModes()))], i)
			if i%9 == 4 {
				c.NonFinite = true
				c.X[0] = math.NaN()
				c.W2[len(c.W2)-1] = math.Inf(-1)
			}
			for pi, p := range gpu.Poisons() {
				r, err := b.RunFaults(context.Background(), c, gpu.RunOptions{Poison: p, PoisonSeed: i, Stages: pi%2 == 0}, set)
				if err != nil {
					fmt.Fprintf(h, "error %v\n", err)
					continue
				}
				for _, v := range [][]float32{r.Y, r.DX, r.DW1, r.DW2, r.DB1, r.DB2, r.DRW} {
					put(v)
				}
				if st := r.Stages; st != nil {
					for _, v := range [][]float32{st.Xs, st.H1, st.Act, st.H2, st.O, st.DO, st.DH2, st.DAct, st.DH1, st.DXs} {
						put(v)
					}
					if rc, ok := any(b).(interface{ Recycle(*gpu.Result) }); ok && i%3 == 0 {
						rc.Recycle(r) // (an interface: the golden file was first written by a build without Recycle)
					}
				}
			}
		}
		b.Close()
		lines = append(lines, fmt.Sprintf("%s %q", hex.EncodeToString(h.Sum(nil)), fs))
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "outputs.sha256")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Fatalf("the sim's outputs changed (per fault set: hash, set):\ngot\n%swant\n%s", got, want)
	}
}
