package props

import (
	"context"
	"fmt"
	"strings"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/prop"
)

// Repro is the one-line command that reproduces a spec's failure.
func Repro(backend string, env *Env, s Spec) string {
	cmd := fmt.Sprintf("moecheck check --backend %s --spec '%s'", backend, s.normalized())
	if env != nil && !env.Faults.Empty() {
		cmd += " --faults " + env.Faults.String()
	}
	return cmd
}

// Suite returns the property suite as gopter properties over generated specs: one gopter
// property per Property, each calling the same Check function the CLI and the fuzz targets
// call. gopter shrinks a failing spec with the per-field shrinkers of GenSpec.
func Suite(ctx context.Context, env *Env, o GenOptions, params *gopter.TestParameters, props ...Property) *gopter.Properties {
	if len(props) == 0 {
		props = allProperties
	}
	ps := gopter.NewProperties(params)
	for _, p := range props {
		p := p
		ps.Property(p.Name, prop.ForAll(func(s Spec) string {
			c, err := s.Build()
			if err != nil {
				return "build: " + err.Error()
			}
			if p.Applies != nil && !p.Applies(c, s) {
				return ""
			}
			out, err := p.Check(ctx, env, c, s.PoisonPolicy())
			if err != nil {
				return "error: " + err.Error()
			}
			if out.Pass {
				return ""
			}
			return describe(out) + "\nreproduce: " + Repro(env.Backend.Name(), env, s)
		}, GenSpec(o)))
	}
	return ps
}

func describe(o *Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "property %s failed: %s", o.Property, o.Message)
	for i, f := range o.Failures {
		if i == 6 {
			fmt.Fprintf(&b, "\n  … %d more", len(o.Failures)-i)
			break
		}
		fmt.Fprintf(&b, "\n  - %s", f)
	}
	return b.String()
}
