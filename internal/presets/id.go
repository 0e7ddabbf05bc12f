package presets

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/moe"
)

// ID names one preset case so that it can be rebuilt: "<preset>/ep<EP>/rank<R>/T<T>/seed<S>",
// followed by "/<dtype>" unless bf16, "/<routing>" unless dispatched, "/<data>" unless normal
// and "/scale<N>" when scaled. ParseID reads it back.
func (p Preset) ID(o CaseOptions) string {
	o = o.withDefaults(p)
	s := fmt.Sprintf("%s/ep%d/rank%d/T%d/seed%d", p.Name, o.EP, o.Rank, o.T, o.Seed)
	if o.DType != moe.BF16 {
		s += "/" + o.DType.String()
	}
	if o.Routing != Dispatched {
		s += "/" + o.Routing.String()
	}
	if o.Data != moe.Normal {
		s += "/" + o.Data.String()
	}
	if o.Scale > 1 {
		s += fmt.Sprintf("/scale%d", o.Scale)
	}
	return s
}

// ParseID reads a preset case id (see ID); parts after the name may be left out (defaults).
func ParseID(id string) (Preset, CaseOptions, error) {
	parts := strings.Split(strings.TrimSpace(id), "/")
	p, err := ByName(parts[0])
	if err != nil {
		return Preset{}, CaseOptions{}, err
	}
	var o CaseOptions
	num := func(part, prefix string, least int, dst *int) (bool, error) {
		if !strings.HasPrefix(part, prefix) {
			return false, nil
		}
		v, err := strconv.Atoi(strings.TrimPrefix(part, prefix))
		if err != nil || v < least {
			// ep0, T0, scale0 would silently mean "the default": refuse them
			return true, fmt.Errorf("presets: id %q: %q: want %s<integer ≥ %d>", id, part, prefix, least)
		}
		*dst = v
		return true, nil
	}
	for _, part := range parts[1:] {
		var seed int
		matched := false
		for _, f := range []struct {
			prefix string
			least  int
			dst    *int
		}{{"ep", 1, &o.EP}, {"rank", 0, &o.Rank}, {"T", 1, &o.T}, {"seed", 0, &seed}, {"scale", 1, &o.Scale}} {
			ok, err := num(part, f.prefix, f.least, f.dst)
			if err != nil {
				return Preset{}, CaseOptions{}, err
			}
			if ok {
				matched = true
				if f.prefix == "seed" {
					o.Seed = uint64(seed)
				}
				break
			}
		}
		if matched {
			continue
		}
		if d, err := moe.ParseDType(part); err == nil {
			o.DType = d
		} else if r, err := ParseRouting(part); err == nil {
			o.Routing = r
		} else if m, err := moe.ParseDataMode(part); err == nil {
			o.Data = m
		} else {
			return Preset{}, CaseOptions{}, fmt.Errorf("presets: id %q: unknown part %q (want ep<N>, rank<R>, T<T>, seed<S>, scale<N>, a dtype, a routing or a data mode)", id, part)
		}
	}
	if _, err := p.Config(o); err != nil {
		return Preset{}, CaseOptions{}, err
	}
	return p, o, nil
}
