package moe

// Limits bounds the sizes a case may have. A zero field means the DefaultLimits() value, so the
// zero Limits is valid and equals DefaultLimits().
//
// The defaults are sized for the largest real layers (ANCHORS §5: DeepSeek-V3 H=7168,
// Mixtral I=14336, Qwen3-Next 512 experts, top-10) at up to 64Ki tokens per rank, and for the
// 24 GiB development machines: MaxElements = 2^31 float64 values is 16 GiB of case data (a
// DeepSeek-V3 EP-8 rank holds 1.41·10^9 weight values, 1.64·10^9 values in all at T =
// 16,384). A check on the CPU path needs about 12 times that (presets.BytesPerElement = 96
// bytes a value; a sampled check through a worker about 6: BytesPerElementSampledWorker), so
// the moecheck CLI lowers MaxElements to what fits 3/4 of the machine's memory.
type Limits struct {
	MaxT, MaxH, MaxI, MaxE, MaxK int
	MaxWorld                     int   // EP ranks
	MaxG                         int   // global experts E·World
	MaxSlots                     int   // T·K
	MaxElements                  int64 // all float64 values of a case together
}

// defaultLimits are the limits used when a Limits field is zero.
var defaultLimits = Limits{
	MaxT:        1 << 16,
	MaxH:        1 << 15,
	MaxI:        1 << 15,
	MaxE:        1 << 12,
	MaxK:        64,
	MaxWorld:    1024,
	MaxG:        1 << 16,
	MaxSlots:    1 << 20,
	MaxElements: 1 << 31,
}

func (l Limits) orDefault() Limits {
	d := defaultLimits
	pick := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	l.MaxT = pick(l.MaxT, d.MaxT)
	l.MaxH = pick(l.MaxH, d.MaxH)
	l.MaxI = pick(l.MaxI, d.MaxI)
	l.MaxE = pick(l.MaxE, d.MaxE)
	l.MaxK = pick(l.MaxK, d.MaxK)
	l.MaxWorld = pick(l.MaxWorld, d.MaxWorld)
	l.MaxG = pick(l.MaxG, d.MaxG)
	l.MaxSlots = pick(l.MaxSlots, d.MaxSlots)
	if l.MaxElements == 0 {
		l.MaxElements = d.MaxElements
	}
	return l
}

// DefaultLimits returns the limits used when a Limits field is zero.
func DefaultLimits() Limits { return defaultLimits }
