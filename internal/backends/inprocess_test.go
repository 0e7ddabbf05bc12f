package backends

import "testing"

func TestInProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"", true}, {"sim", true}, {" sim-torch ", true}, {"sim-torch-rpr", true},
		{"cuda", false}, {"worker", false}, {"worker:./moecheck-worker -backend cuda", false}, {"torch:transformers:grouped_mm", false},
	} {
		if got := InProcess(tc.name); got != tc.want {
			t.Errorf("InProcess(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
