package props

import (
	"fmt"
	"strings"
)

// FailureLines are the lines that list a failing outcome's checks with their locations, at
// most max (0: all; the rest counted in a last line). A failure that is already the
// outcome's Message (a property that names no message of its own) is not listed again.
func FailureLines(o *Outcome, max int) []string {
	fs := o.Failures
	if len(fs) > 0 && fs[0].String() == o.Message {
		fs = fs[1:]
	}
	var out []string
	for i, f := range fs {
		if max > 0 && i == max {
			out = append(out, fmt.Sprintf("… %d more", len(fs)-i))
			break
		}
		out = append(out, "- "+f.String())
	}
	return out
}

// Describe renders a failing outcome: "property P failed: message", then its FailureLines
// (at most six), indented. Every command and Verify print failures with it or FailureLines.
func Describe(o *Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "property %s failed: %s", o.Property, o.Message)
	for _, l := range FailureLines(o, 6) {
		b.WriteString("\n  " + l)
	}
	return b.String()
}
