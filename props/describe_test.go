package props

import (
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/oracle"
)

// TestDescribeCaseError: a crashed or hung case was printed twice, once as the message and
// once as a "case-error case: 1 element(s); worst [0] token=0 ... got 0 want 0 ± 0" line
// with a location and values it never had.
func TestDescribeCaseError(t *testing.T) {
	for _, kind := range []gpu.CaseErrorKind{gpu.TimedOut, gpu.Crashed, gpu.OutOfMemory} {
		ce := &gpu.CaseError{Kind: kind, Detail: "worker killed"}
		v := oracle.CaseErrorVerdict(ce)
		o := failed("matches", v.Failures, v, ce.Error())
		d := Describe(o)
		if strings.Count(d, "worker killed") != 1 || strings.Contains(d, "want 0 ± 0") {
			t.Errorf("kind=%v: case error described as\n%s\nwant its message once, with no location or values", kind, d)
		}
	}
}
