//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// rchunk is the routing kernels' chunk of slots (kernels/routing.cu RCHUNK).
const rchunk = 1024

// stage is one step of the path: a few kernel launches, then (with guard checks) a
// synchronization and a guard-zone check attributed to it.
type stage struct {
	name string
	run  func() error
}

// pathRun is one run's device state: sizes, buffers and the stage list.
type pathRun struct {
	b                *Backend
	c                *moe.Case
	o                runOpts
	dt, es           int64 // kernel dtype code, element size in bytes
	S, T, H, I, E, K int64
	flags            uint64
	tc               bool // tensor-core GEMMs
	splits           int64
	buf              map[string]*devBuf
	guarded          []*devBuf
	desc, bad        *devBuf
	stages           []stage
}

// runOpts are one run's options and the harness's faults (fault.Runner).
type runOpts struct {
	gpu.RunOptions
	faults fault.Set
}

func has(o runOpts, f fault.Fault) bool { return o.faults.Has(f) }

// prepare allocates, uploads, poisons and guards every buffer of the case and builds the
// stage list.
func (b *Backend) prepare(c *moe.Case, o runOpts) (*pathRun, error) {
	b.runs++
	r := &pathRun{b: b, c: c, o: o, dt: dtypeCode(c.DType), es: int64(c.DType.Bits() / 8),
		S: int64(c.S()), T: int64(c.T), H: int64(c.H), I: int64(c.I), E: int64(c.E), K: int64(c.K),
		flags: uint64(o.faults), buf: map[string]*devBuf{}}
	r.tc = c.DType != moe.FP32 && c.H%8 == 0 && c.I%8 == 0 && !has(o, fault.AccumInDtype)
	r.splits = r.S / (r.E * 1024)
	r.splits = max(1, min(64, r.splits))
	S, T, H, I, E, es := r.S, r.T, r.H, r.I, r.E, r.es
	nchunks := (S + rchunk - 1) / rchunk
	type spec struct {
		name  string
		buf   gpu.Buffer
		bytes int64
	}
	specs := []spec{
		{"x", 0, T * H * es}, {"w1", 0, E * 2 * I * H * es}, {"w2", 0, E * H * I * es}, {"dy", 0, T * H * es},
		{"rw", 0, S * es}, {"eff_id", 0, S * 4}, {"eff_w", 0, S * es}, {"hist", 0, nchunks * (E + 1) * 4},
		{"counts", 0, E * 4}, {"offs", 0, E * 4}, {"goffs", 0, E * 4}, {"woffs", 0, E * 4},
		{"tiles128", 0, (E + 1) * 4}, {"tiles64", 0, (E + 1) * 4}, {"meta", 0, 4 * 4},
		{"perm", 0, S * 4}, {"inv", 0, S * 4}, {"sorted", 0, S * 4},
		{"xs", gpu.BufXs, S * H * es}, {"h1", gpu.BufH1, S * 2 * I * es}, {"act", gpu.BufAct, S * I * es},
		{"h2", gpu.BufH2, S * H * es}, {"o", gpu.BufO, S * H * es}, {"y", gpu.BufY, T * H * es},
		{"d_o", gpu.BufDO, S * H * es}, {"d_rw", gpu.BufDRW, S * es}, {"d_h2", gpu.BufDH2, S * H * es},
		{"d_act", gpu.BufDAct, S * I * es}, {"d_h1", gpu.BufDH1, S * 2 * I * es}, {"d_xs", gpu.BufDXs, S * H * es},
		{"dX", gpu.BufDX, T * H * es}, {"dW1", gpu.BufDW1, E * 2 * I * H * es}, {"dW2", gpu.BufDW2, E * H * I * es},
	}
	if c.Global != nil {
		specs = append(specs, spec{"gids", 0, S * 8})
	} else {
		specs = append(specs, spec{"ids", 0, S * 4})
	}
	if c.Bias {
		specs = append(specs, spec{"b1", 0, E * 2 * I * es}, spec{"b2", 0, E * H * es},
			spec{"dB1", gpu.BufDB1, E * 2 * I * es}, spec{"dB2", gpu.BufDB2, E * H * es},
			spec{"bpart", 0, r.splits * E * max(H, 2*I) * 4})
	}
	for _, s := range specs {
		d, err := b.alloc(s.name, s.buf, s.bytes)
		if err != nil {
			return nil, err
		}
		r.buf[s.name] = d
		r.guarded = append(r.guarded, d)
	}
	zones := guardZones(r.guarded)
	var err error
	if r.desc, err = b.alloc("guard_desc", 0, int64(len(zones))*8); err != nil {
		return nil, err
	}
	if r.bad, err = b.alloc("guard_bad", 0, 8); err != nil {
		return nil, err
	}
	// Inputs.
	d := c.DType
	up := func(name string, bytes []byte) error { return htod(r.buf[name].data, bytes) }
	ws := c.Routing.Weights
	if c.Global != nil {
		ws = c.Global.Weights
		gb := make([]byte, 8*len(c.Global.IDs))
		for i, g := range c.Global.IDs {
			for j := 0; j < 8; j++ {
				gb[8*i+j] = byte(uint64(g) >> (8 * j))
			}
		}
		if err := up("gids", gb); err != nil {
			return nil, err
		}
	} else if err := up("ids", i32Bytes(c.Routing.IDs)); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		name string
		v    []float64
	}{{"x", c.X}, {"w1", c.W1}, {"w2", c.W2}, {"dy", c.DY}, {"rw", ws}, {"b1", c.B1}, {"b2", c.B2}} {
		if t.v == nil {
			continue
		}
		if err := up(t.name, encode(d, t.v)); err != nil {
			return nil, err
		}
	}
	if err := up("meta", i32Bytes([]int32{0, 0, math.MaxInt32, 0})); err != nil {
		return nil, err
	}
	// Poison every path buffer; internal ones get 0xFF bytes (they are fully written).
	for _, db := range r.guarded {
		if db.buf == 0 {
			if _, input := map[string]bool{"x": true, "w1": true, "w2": true, "dy": true, "rw": true, "ids": true,
				"gids": true, "b1": true, "b2": true, "meta": true}[db.name]; !input {
				if err := cu.MemsetD8(db.data, 0xff, db.n); err != nil {
					return nil, err
				}
			}
			continue
		}
		n := db.n / es
		// Stale keeps the previous run's values only when the buffer held the same number
		// of elements of the same dtype (as gpu/sim's pool); otherwise Huge.
		stale := !db.fresh && db.lastN == db.n && db.lastDT == r.dt
		db.lastN, db.lastDT = db.n, r.dt
		switch {
		case o.Poison == gpu.PoisonStale && stale:
			err = b.launch("stale_fix", grid1(n), 256, 0, db.data, n, r.dt, int64(db.buf), o.PoisonSeed)
		case o.Poison == gpu.PoisonStale:
			err = b.launch("poison_fill", grid1(n), 256, 0, db.data, n, r.dt, int64(gpu.PoisonHuge), int64(db.buf), o.PoisonSeed)
		default:
			err = b.launch("poison_fill", grid1(n), 256, 0, db.data, n, r.dt, int64(o.Poison), int64(db.buf), o.PoisonSeed)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := htod(r.desc.data, u64Bytes(zones)); err != nil {
		return nil, err
	}
	if err := b.launch("guard_fill", dim{x: min(len(zones)/3, 1024)}, 256, 0, r.desc.data, int64(len(zones)/3)); err != nil {
		return nil, err
	}
	r.build()
	return r, nil
}

func (r *pathRun) p(name string) cu.DevicePtr {
	if d, ok := r.buf[name]; ok {
		return d.data
	}
	return 0
}

// build lists the stages of docs/path.md.
func (r *pathRun) build() {
	o := r.o
	S, T, H, I, E, K, dt := r.S, r.T, r.H, r.I, r.E, r.K, r.dt
	b := r.b
	p := r.p
	maskA := !has(o, fault.NoMaskUpDgrad)
	maskB := !has(o, fault.NoMaskDownDgrad)
	maskC := !has(o, fault.MaskAfterWeight)
	drop := has(o, fault.LastTileDropped)
	std := r.c.Layout == moe.Standard
	kind := int64(0)
	if r.c.Act == moe.GptOss {
		kind = 1
	}
	swap := has(o, fault.GateUpSwapped)
	rot := int64(-1) // the combine's slot order: fixed
	if has(o, fault.NondeterministicSum) {
		rot = int64(b.runs % uint64(K)) // rotated by (run + t) mod K, as gpu/sim does
	}
	nchunks := (S + rchunk - 1) / rchunk
	lo, keep := int64(0), false
	if g := r.c.Global; g != nil {
		lo, keep = int64(r.c.EP.Rank)*E, g.Options.KeepSentinelWeights
	}
	add := func(name string, f func() error) { r.stages = append(r.stages, stage{name, f}) }
	add("route", func() error {
		if err := b.launch("route_prepare", grid1(S), 256, 0, p("ids"), p("gids"), p("rw"), dt, S, E, lo, keep, r.flags,
			p("eff_id"), p("eff_w"), p("meta")); err != nil {
			return err
		}
		if err := b.launch("route_hist", dim{x: int(nchunks)}, 256, int(E+1)*4, p("eff_id"), S, E, p("hist")); err != nil {
			return err
		}
		if err := b.launch("route_scan", dim{x: 1}, 1024, int(E+1)*8, p("hist"), nchunks, S, E, r.flags, p("counts"), p("offs"),
			p("goffs"), p("woffs"), p("tiles128"), p("tiles64"), p("meta")); err != nil {
			return err
		}
		return b.launch("route_scatter", dim{x: int(nchunks)}, 32, int(E+1)*4, p("eff_id"), p("hist"), S, E, p("perm"), p("inv"), p("sorted"))
	})
	add("gather", func() error {
		return b.launch("gather_rows", grid1(S*H), 256, 0, p("x"), p("xs"), p("perm"), p("meta"), S, K, H, dt, maskA)
	})
	add("gemm1", func() error { return r.grouped("xs", "w1", 2*I*H, std, "b1", "h1", 2*I, H, drop) })
	if maskB {
		add("mask_b", func() error { return b.launch("mask_rows", grid1(S*2*I), 256, 0, p("h1"), p("meta"), S, 2*I, dt) })
	}
	add("act", func() error { return b.launch("act_fwd", grid1(S*I), 256, 0, p("h1"), p("act"), S, I, kind, swap, dt) })
	add("gemm2", func() error { return r.grouped("act", "w2", H*I, std, "b2", "h2", H, I, drop) })
	if maskC {
		add("mask_c", func() error { return b.launch("mask_rows", grid1(S*H), 256, 0, p("h2"), p("meta"), S, H, dt) })
	}
	add("weight", func() error {
		return b.launch("scale_rows", grid1(S*H), 256, 0, p("h2"), p("eff_w"), p("perm"), p("o"), p("meta"), S, H, dt, !maskC)
	})
	add("combine", func() error {
		return b.launch("combine", grid1(T*H), 256, 0, p("o"), p("inv"), p("y"), p("meta"), T, K, H, dt,
			has(o, fault.CombineInDtype), rot, has(o, fault.ZeroTokenRow))
	})
	add("gather_dy", func() error {
		return b.launch("gather_rows", grid1(S*H), 256, 0, p("dy"), p("d_o"), p("perm"), p("meta"), S, K, H, dt, false)
	})
	add("d_rw", func() error { return b.launch("row_dot", grid1(S*32), 256, 0, p("d_o"), p("h2"), p("d_rw"), S, H, dt) })
	add("d_h2", func() error {
		return b.launch("scale_rows", grid1(S*H), 256, 0, p("d_o"), p("eff_w"), p("perm"), p("d_h2"), p("meta"), S, H, dt, true)
	})
	add("dgrad2", func() error { return r.grouped("d_h2", "w2", H*I, !std, "", "d_act", I, H, false) })
	add("wgrad2", func() error {
		if std {
			return r.wgrad("d_h2", H, "act", I, "dW2", H, I)
		}
		return r.wgrad("act", I, "d_h2", H, "dW2", I, H)
	})
	if r.c.Bias {
		add("dbias2", func() error { return r.biasGrad("d_h2", "dB2", H) })
	}
	add("act_bwd", func() error {
		return b.launch("act_bwd", grid1(S*I), 256, 0, p("h1"), p("d_act"), p("d_h1"), p("meta"), S, I, kind, swap, dt, maskB)
	})
	add("dgrad1", func() error { return r.grouped("d_h1", "w1", 2*I*H, !std, "", "d_xs", H, 2*I, false) })
	if maskA {
		add("mask_a_bwd", func() error { return b.launch("mask_rows", grid1(S*H), 256, 0, p("d_xs"), p("meta"), S, H, dt) })
	}
	add("wgrad1", func() error {
		if std {
			return r.wgrad("d_h1", 2*I, "xs", H, "dW1", 2*I, H)
		}
		return r.wgrad("xs", H, "d_h1", 2*I, "dW1", H, 2*I)
	})
	if r.c.Bias {
		add("dbias1", func() error { return r.biasGrad("d_h1", "dB1", 2*I) })
	}
	add("scatter", func() error {
		return b.launch("combine", grid1(T*H), 256, 0, p("d_xs"), p("inv"), p("dX"), p("meta"), T, K, H, dt, false, rot, false)
	})
}

func cdiv(a, b int64) int64 { return (a + b - 1) / b }

// grouped launches a row-grouped GEMM: out[rows of group e] = a · W[e]ᵀ (+ bias[e]).
// bK: W[e] is stored N×K (K contiguous), else K×N.
func (r *pathRun) grouped(a, w string, wstride int64, bK bool, bias, out string, N, Kd int64, drop bool) error {
	p := r.p
	if r.tc {
		name := "tc_grouped_bf16_"
		if r.c.DType == moe.FP16 {
			name = "tc_grouped_fp16_"
		}
		if bK {
			name += "bk"
		} else {
			name += "bn"
		}
		bn, bk := r.tile(N)
		name += tcKernelSuffix(bn, bk)
		grid := (cdiv(r.S, 128) + r.E) * cdiv(N, int64(bn))
		return r.b.launch(name, dim{x: int(grid)}, 256, tcSmemBytes(bn, bk), p(a), p(w), wstride, p(bias), p(out), N, Kd, r.E,
			p("goffs"), p("tiles128"), p("meta"), r.flags, drop)
	}
	sbn, sbk := Kd, int64(1)
	if !bK {
		sbn, sbk = 1, N
	}
	grid := (cdiv(r.S, 64) + r.E) * cdiv(N, 64)
	return r.b.launch("simt_gemm", dim{x: int(grid)}, 256, 0, p(a), Kd, int64(1), p(w), sbn, sbk, wstride, p(bias), p(out),
		int64(0), N, Kd, r.E, p("goffs"), p("tiles64"), p("meta"), r.flags, int64(0), r.dt, has(r.o, fault.AccumInDtype), drop)
}

// wgrad launches the per-expert weight gradient out[e] (M×N) = Σ_{rows i of e} a[i,:]ᵀ b[i,:].
func (r *pathRun) wgrad(a string, lda int64, bb string, ldb int64, out string, M, N int64) error {
	p := r.p
	if r.tc {
		name := "tc_wgrad_bf16"
		if r.c.DType == moe.FP16 {
			name = "tc_wgrad_fp16"
		}
		bn, bk := r.tile(N)
		name += tcKernelSuffix(bn, bk)
		return r.b.launch(name, dim{x: int(cdiv(M, 128) * cdiv(N, int64(bn))), y: int(r.E)}, 256, tcSmemBytes(bn, bk),
			p(a), lda, p(bb), ldb, p(out), M, N, p("woffs"), r.flags)
	}
	return r.b.launch("simt_gemm", dim{x: int(cdiv(M, 64) * cdiv(N, 64)), y: int(r.E)}, 256, 0, p(a), int64(1), lda, p(bb),
		int64(1), ldb, int64(0), cu.DevicePtr(0), p(out), M, N, int64(0), r.E, p("woffs"), p("tiles64"), p("meta"), r.flags,
		int64(1), r.dt, has(r.o, fault.AccumInDtype), false)
}

// biasGrad: db[e, :] = Σ over rows of clamped id e of g[i, :] (docs/path.md steps 14, 17).
func (r *pathRun) biasGrad(g, db string, W int64) error {
	p := r.p
	if err := r.b.launch("bias_partial", dim{x: int(cdiv(W, 32)), y: int(r.E), z: int(r.splits)}, 256, 0, p(g), p("sorted"),
		p("bpart"), r.S, W, r.E, r.dt); err != nil {
		return err
	}
	return r.b.launch("bias_finish", grid1(r.E*W), 256, 0, p("bpart"), p(db), r.E, W, r.splits, r.dt)
}

// checkGuards synchronizes and reports the first damaged guard zone as a crash CaseError.
func (r *pathRun) checkGuards(stage string) error {
	if err := cu.MemsetD32(r.bad.data, 0xffffffff, 2); err != nil {
		return err
	}
	nz := len(r.guarded) * 2
	if err := r.b.launch("guard_check", dim{x: min(nz, 1024)}, 256, 0, r.desc.data, int64(nz), r.bad.data); err != nil {
		return err
	}
	var v [8]byte
	if err := dtoh(v[:], r.bad.data); err != nil {
		return err
	}
	bad := uint64(0)
	for i := 7; i >= 0; i-- {
		bad = bad<<8 | uint64(v[i])
	}
	if bad == math.MaxUint64 {
		return nil
	}
	zone, off := bad>>32, bad&0xffffffff
	d := r.guarded[zone/2]
	where := "before"
	if zone%2 == 1 {
		where = "after"
	}
	return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf(
		"out-of-bounds write detected after stage %s: guard zone %s buffer %s (%d bytes) damaged at byte %d",
		stage, where, d.name, d.n, off)}
}

// runPath runs every stage and downloads the result.
func (b *Backend) runPath(c *moe.Case, o runOpts, _ any) (*gpu.Result, error) {
	r, err := b.prepare(c, o)
	if err != nil {
		return nil, b.fail("setup", err)
	}
	if err := cu.Synchronize(); err != nil {
		return nil, b.fail("setup", err)
	}
	for _, s := range r.stages {
		if err := s.run(); err != nil {
			return nil, b.fail(s.name, err)
		}
		if !b.opts.NoGuardChecks {
			if err := cu.Synchronize(); err != nil {
				return nil, b.fail(s.name, err)
			}
			if err := r.checkGuards(s.name); err != nil {
				return nil, b.fail(s.name, err)
			}
		}
	}
	if err := cu.Synchronize(); err != nil {
		return nil, b.fail("end", err)
	}
	if err := r.checkGuards("end of run"); err != nil {
		return nil, b.fail("end", err)
	}
	res, err := r.download()
	if err != nil {
		return nil, b.fail("download", err)
	}
	return res, nil
}

func (r *pathRun) get(name string) ([]byte, error) {
	d := r.buf[name]
	out := make([]byte, d.n)
	return out, dtoh(out, d.data)
}

func (r *pathRun) getF(name string) ([]float32, error) {
	b, err := r.get(name)
	if err != nil {
		return nil, err
	}
	return decode(r.c.DType, b), nil
}

func (r *pathRun) download() (*gpu.Result, error) {
	res := &gpu.Result{}
	var err error
	for _, t := range []struct {
		name string
		v    *[]float32
	}{{"y", &res.Y}, {"dX", &res.DX}, {"dW1", &res.DW1}, {"dW2", &res.DW2}, {"dB1", &res.DB1}, {"dB2", &res.DB2}} {
		if _, ok := r.buf[t.name]; !ok {
			continue
		}
		if *t.v, err = r.getF(t.name); err != nil {
			return nil, err
		}
	}
	drw, err := r.getF("d_rw")
	if err != nil {
		return nil, err
	}
	ib, err := r.get("inv")
	if err != nil {
		return nil, err
	}
	inv := i32s(ib)
	res.DRW = make([]float32, r.S)
	for s := range res.DRW {
		res.DRW[s] = drw[inv[s]]
	}
	if !r.o.Stages {
		return res, nil
	}
	st := &gpu.Stages{}
	pb, err := r.get("perm")
	if err != nil {
		return nil, err
	}
	ob, err := r.get("offs")
	if err != nil {
		return nil, err
	}
	st.Perm, st.Offsets = i32s(pb), i32s(ob)
	for _, t := range []struct {
		name string
		v    *[]float32
	}{{"xs", &st.Xs}, {"h1", &st.H1}, {"act", &st.Act}, {"h2", &st.H2}, {"o", &st.O}, {"d_o", &st.DO},
		{"d_h2", &st.DH2}, {"d_act", &st.DAct}, {"d_h1", &st.DH1}, {"d_xs", &st.DXs}} {
		if *t.v, err = r.getF(t.name); err != nil {
			return nil, err
		}
	}
	res.Stages = st
	return res, nil
}

// tile is the tensor-core tile for N columns: columns (Options.TileN, else tcTile) and depth
// (32 for 128 columns; Options.TileK, else 64, for 256).
func (r *pathRun) tile(n int64) (bn, bk int) {
	bn = r.b.opts.TileN
	if bn == 0 {
		bn = tcTile(n)
	}
	bk = 32
	if bn == 256 {
		bk = 64
		if r.b.opts.TileK != 0 {
			bk = r.b.opts.TileK
		}
	}
	return bn, bk
}
