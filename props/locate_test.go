package props_test

import (
	"strings"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// TestLocateFeeds: a failure location in y or dX names every slot of its token with the
// slot's expert and sorted row (the rows feeding the element), sentinels marked.
func TestLocateFeeds(t *testing.T) {
	s, err := props.ParseSpec("T=5 H=3 I=2 E=3 K=3 world=2 rank=1 routing=uniform seed=9")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	for _, tensor := range []moe.Tensor{moe.TensorY, moe.TensorDX} {
		i := 3*c.H + 1 // token 3, column 1
		l := oracle.Locate(c, p, tensor, i)
		if len(l.Feeds) != c.K {
			t.Fatalf("Feeds/%s: %d feeds, want K=%d", tensor, len(l.Feeds), c.K)
		}
		for k, f := range l.Feeds {
			s := 3*c.K + k
			id := int(c.Routing.IDs[s])
			if f.Slot != k || f.Expert != id || f.SortedRow != int(p.Inv[s]) || f.Sentinel != (id == c.E) {
				t.Errorf("Feeds/%s: feed %d = %+v, want slot %d expert %d row %d", tensor, k, f, k, id, p.Inv[s])
			}
			if int(p.Perm[f.SortedRow]) != s {
				t.Errorf("Feeds/%s: sorted row %d holds slot %d, not %d", tensor, f.SortedRow, p.Perm[f.SortedRow], s)
			}
		}
		if str := l.String(); !strings.Contains(str, "fed by slot 0") {
			t.Errorf("Feeds/%s: %q does not name the feeding slots", tensor, str)
		}
	}
	if l := oracle.Locate(c, p, moe.TensorDW1, 0); len(l.Feeds) != 0 {
		t.Errorf("Feeds/dW1: %+v, want none", l.Feeds)
	}
}
