package blackbox_test

import (
	"testing"

	"github.com/moecheck/moecheck/examples/blackbox"
	"github.com/moecheck/moecheck/props"
)

// TestConformance is the one line a user adds to their module.
func TestConformance(t *testing.T) {
	props.Verify(t, blackbox.New(), props.VerifyOptions{NoStages: true})
}
