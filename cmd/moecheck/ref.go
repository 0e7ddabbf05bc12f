package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/internal/interrupt"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// refFlags are ref's case-building flags (the original std-flag ref, kept: -T -H -I -E -K
// and the long names).
type refFlags struct {
	T, H, I, E, K     int
	world, rank       int
	act, layout       string
	dtype, data       string
	bias, mag, stages bool
	seed              uint64
	spec, preset      string
}

func (a *app) refCmd() *cobra.Command {
	f := &refFlags{}
	cmd := &cobra.Command{
		Use:   "ref [CASE-FILE]",
		Short: "Build a case, run the float64 reference and print a summary",
		Long: `ref builds a case from flags (uniform routing via moe.RandomRouting, data via
moe.Generate), or takes a corpus file, a --spec or a --preset case, runs the float64 reference
(package reference: the mathematical function of docs/path.md without storage rounding) and
prints the routing plan and, per output and gradient, its size, l2 norm and largest magnitude
(with --mag also the magnitude pass's largest bound; with --stages the stage intermediates).`,
		Example: `  moecheck ref -T 64 -H 96 -I 80 -E 8 -K 4 --ep-world 2 --ep-rank 1 --mag
  moecheck ref --spec 'T=4 H=8 I=8 E=3 K=2 seed=1' --stages
  moecheck ref --preset gpt-oss-20b/ep8/rank1/T2/seed1/scale8
  moecheck ref corpus/seeds/single-token.case`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runRef(cmd, f, args) },
	}
	fs := cmd.Flags()
	fs.IntVarP(&f.T, "tokens", "T", 64, "tokens on this rank")
	fs.IntVarP(&f.H, "hidden", "H", 96, "hidden size")
	fs.IntVarP(&f.I, "intermediate", "I", 80, "expert intermediate size (GEMM 1 has 2I outputs)")
	fs.IntVarP(&f.E, "experts", "E", 8, "local experts (the sentinel id is E)")
	fs.IntVarP(&f.K, "topk", "K", 4, "top-k slots per token")
	fs.IntVar(&f.world, "ep-world", 1, "expert-parallel world size W (global experts E·W)")
	fs.IntVar(&f.rank, "ep-rank", 0, "this rank, in [0, W)")
	fs.StringVar(&f.act, "act", "swiglu", "activation: swiglu or gptoss")
	fs.StringVar(&f.layout, "layout", "standard", "weight layout: standard or transposed")
	fs.StringVar(&f.dtype, "dtype", "bf16", "dtype: bf16, fp16 or fp32")
	fs.BoolVar(&f.bias, "bias", false, "expert biases B1, B2")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the routing and the data")
	fs.StringVar(&f.data, "data", "normal", "data mode: normal, integer, large or subnormal")
	fs.BoolVar(&f.mag, "mag", false, "also run the magnitude pass and print its largest bound per tensor")
	fs.BoolVar(&f.stages, "stages", false, "also summarize the stage intermediates (sorted rows)")
	fs.StringVar(&f.spec, "spec", "", "take the case from a one-line spec instead of the flags")
	fs.StringVar(&f.preset, "preset", "", "take the case from a model-preset case id (e.g. qwen3-30b-a3b/ep8/rank3/T4/seed1)")
	return cmd
}

func (a *app) runRef(cmd *cobra.Command, f *refFlags, args []string) error {
	n := len(args)
	if f.spec != "" {
		n++
	}
	if f.preset != "" {
		n++
	}
	if n > 1 {
		return usageErr("ref takes at most one of a case file, --spec or --preset")
	}
	var c *moe.Case
	var err error
	source := ""
	switch {
	case f.spec != "":
		s, err := parseSpec(f.spec, a.caseLimits())
		if err != nil {
			return err
		}
		if c, err = s.Build(); err != nil {
			return usageErr("--spec: %v", err)
		}
		source = "spec " + s.String()
	case f.preset != "":
		var err error
		if c, err = a.presetCase(f.preset); err != nil {
			return err
		}
		source = "preset " + f.preset
	case len(args) == 1:
		cs, err := loadCorpus(args, a.caseLimits())
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return usageErr("%s holds %d cases; ref takes one", args[0], len(cs))
		}
		c, source = cs[0].Case, "corpus "+cs[0].Path
	default:
		if f.world < 1 {
			return usageErr("--ep-world %d: want at least 1", f.world)
		}
		cfg := moe.Config{T: f.T, H: f.H, I: f.I, E: f.E, K: f.K, EP: moe.EP{World: f.world, Rank: f.rank}, Bias: f.bias}
		mode, err := parseAll(&cfg, f.act, f.layout, f.dtype, f.data)
		if err == nil {
			err = cfg.Validate(a.caseLimits())
		}
		if err != nil {
			return usageErr("%v", err)
		}
		r, err := moe.RandomRouting(cfg, f.seed)
		if err != nil {
			return usageErr("%v", err)
		}
		if c, err = moe.Generate(cfg, r, f.seed, mode); err != nil {
			return usageErr("%v", err)
		}
		source = fmt.Sprintf("seed %d, data %s", f.seed, mode)
	}
	// The output is written once the pass is done, so an interrupt leaves nothing half-written.
	out, err := interrupt.Do(a.ctx, func() (*bytes.Buffer, error) {
		var b bytes.Buffer
		return &b, ref(&b, c, source, f.mag, f.stages)
	})
	if a.ctx.Err() != nil {
		return internalErr(fmt.Errorf("ref interrupted: %w", a.ctx.Err()))
	}
	if err != nil {
		return internalErr(err)
	}
	_, err = out.WriteTo(a.stdout)
	return err
}

func parseAll(cfg *moe.Config, act, layout, dtype, data string) (moe.DataMode, error) {
	var err error
	if cfg.Act, err = moe.ParseActivation(act); err != nil {
		return 0, err
	}
	if cfg.Layout, err = moe.ParseLayout(layout); err != nil {
		return 0, err
	}
	if cfg.DType, err = moe.ParseDType(dtype); err != nil {
		return 0, err
	}
	return moe.ParseDataMode(data)
}

// ref runs the reference on c and writes the summary.
func ref(w io.Writer, c *moe.Case, source string, withMag, stages bool) error {
	start := time.Now()
	res, err := reference.Run(c, reference.Options{Stages: stages})
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	elapsed := time.Since(start)
	var mag *reference.Result
	if withMag {
		if mag, err = reference.Magnitude(c, reference.Options{Stages: stages}); err != nil {
			return fmt.Errorf("magnitude pass: %w", err)
		}
	}

	p := res.Plan
	empty := 0
	counts := make([]string, len(p.Counts))
	for e, n := range p.Counts {
		counts[e] = fmt.Sprint(n)
		if n == 0 {
			empty++
		}
	}
	fmt.Fprintf(w, "config           %s (%s)\n", c.Config, source)
	fmt.Fprintf(w, "slots            %d: %d real rows, %d sentinel\n", c.S(), p.Rows, c.S()-p.Rows)
	fmt.Fprintf(w, "rows per expert  [%s] (%d empty)\n", strings.Join(counts, " "), empty)
	fmt.Fprintf(w, "reference        %v\n\n", elapsed.Round(time.Microsecond))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "tensor\tvalues\tl2 norm\tmax |v|\t"
	if withMag {
		header += "max magnitude\t"
	}
	fmt.Fprintln(tw, header)
	tensors := moe.Outputs()
	if stages {
		tensors = append(tensors, moe.TensorXs, moe.TensorH1, moe.TensorAct, moe.TensorH2, moe.TensorO, moe.TensorDO,
			moe.TensorDRWSorted, moe.TensorDH2, moe.TensorDAct, moe.TensorDH1, moe.TensorDXs)
	}
	for _, t := range tensors {
		v := res.Tensor(t)
		if v == nil {
			continue
		}
		l2, mx := norms(v)
		line := fmt.Sprintf("%s\t%d\t%.6g\t%.6g\t", t, len(v), l2, mx)
		if mag != nil {
			_, mm := norms(mag.Tensor(t))
			line += fmt.Sprintf("%.6g\t", mm)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// norms returns the l2 norm and the largest absolute value of v (NaN if any is NaN).
func norms(v []float64) (l2, maxAbs float64) {
	var scale, ssq float64 = 0, 1 // scaled sum of squares, safe from overflow
	for _, x := range v {
		a := math.Abs(x)
		if math.IsNaN(a) {
			return math.NaN(), math.NaN()
		}
		maxAbs = math.Max(maxAbs, a)
		if a == 0 {
			continue
		}
		if a > scale {
			ssq = 1 + ssq*(scale/a)*(scale/a)
			scale = a
		} else {
			ssq += (a / scale) * (a / scale)
		}
	}
	return scale * math.Sqrt(ssq), maxAbs
}

func (a *app) presetsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "presets",
		Short: "List the model presets (real MoE layer shapes) and what one rank's case costs",
		Long: `presets lists the real model shapes nightly checks (the hidden size H, expert intermediate size I, routed experts and top-k of each model's MoE layers) with their
usual expert-parallel size, the local experts per rank, and the approximate peak memory of one
rank's case on the CPU path at T = 4.`,
		Example: `  moecheck presets
  moecheck check --preset qwen3-30b-a3b/ep8/rank3/T4/seed1 --properties matches`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := a.stdout
			var notes []string
			fmt.Fprintf(w, "%-19s %5s %6s %7s %3s %-7s %-10s %-5s %3s %5s %8s  %s\n", "preset", "H", "I", "experts", "K", "act", "layout", "bias", "EP", "local", "case MiB", "case id (T=4, rank 1)")
			for _, p := range presets.List() {
				o := presets.CaseOptions{T: 4, Rank: 1, Seed: 1}
				mem := "-"
				if cfg, err := p.Config(o); err == nil {
					mem = fmt.Sprint(presets.MemoryEstimate(cfg) >> 20)
				} else {
					notes = append(notes, fmt.Sprintf("%s at EP %d: %v", p.Name, p.EP, err))
				}
				fmt.Fprintf(w, "%-19s %5d %6d %7d %3d %-7s %-10s %-5v %3d %5d %8s  %s\n", p.Name, p.H, p.I, p.Experts, p.TopK, p.Act, p.Layout, p.Bias,
					p.EP, p.Experts/p.EP, mem, p.ID(o))
			}
			for _, n := range notes {
				fmt.Fprintf(w, "note: %s (nightly on a CPU backend raises the EP size to fit --preset-mem)\n", n)
			}
			return nil
		},
	}
}
