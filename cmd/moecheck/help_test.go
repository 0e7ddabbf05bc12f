package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestHelpTextIsSelfContained: every file a command's help or examples names exists in the
// repository (a newcomer copies them), and no help text cites notes that are not in it.
func TestHelpTextIsSelfContained(t *testing.T) {
	a := &app{ctx: context.Background()}
	var walk func(c *cobra.Command)
	file := regexp.MustCompile(`[\w./-]+\.case\b|\b(?:corpus|fuzz|docs|examples)/[\w./-]*\w`)
	walk = func(c *cobra.Command) {
		text := c.Long + "\n" + c.Example + "\n" + c.Short
		c.Flags().VisitAll(func(f *pflag.Flag) { text += "\n" + f.Usage })
		for _, ix := range file.FindAllStringIndex(text, -1) {
			p := text[ix[0]:ix[1]]
			if strings.Contains(p, "<") || !strings.Contains(p, "/") || strings.HasPrefix(text[ix[1]:], "/<") {
				continue // a placeholder such as testdata/fuzz/FuzzPath/<hash>
			}
			if _, err := os.Stat(filepath.Join("..", "..", p)); err != nil {
				t.Errorf("command=%s: help names %s, which is not in the repository", c.Name(), p)
			}
		}
		if strings.Contains(text, "ANCHORS") {
			t.Errorf("command=%s: help cites ANCHORS, which is not in the repository", c.Name())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(a.root())
}
