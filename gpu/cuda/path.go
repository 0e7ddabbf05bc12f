//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"slices"

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
	counts           []int32 // rows per local expert (emptyCounts; StaleEmptyWgrad only)
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
	r.build()
	zones := guardZones(r.guarded)
	var err error
	if r.desc, err = b.alloc("guard_desc", 0, int64(len(zones))*8); err != nil {
		return nil, err
	}
	// One 8-byte slot per stage and one for the end of the run: each guard check writes its
	// own slot, so the run needs no synchronization to say after which stage a zone broke.
	if r.bad, err = b.alloc("guard_bad", 0, int64(len(r.stages)+1)*8); err != nil {
		return nil, err
	}
	// Inputs: encoded into the lane's staging buffer (reused across runs) and queued on the
	// stream.
	d := c.DType
	ws := c.Routing.Weights
	if c.Global != nil {
		ws = c.Global.Weights
	}
	vals := []struct {
		name string
		v    []float64
	}{{"x", c.X}, {"w1", c.W1}, {"w2", c.W2}, {"dy", c.DY}, {"rw", ws}, {"b1", c.B1}, {"b2", c.B2}}
	total := 16 + 8*len(c.Routing.IDs)
	if c.Global != nil {
		total += 8 * len(c.Global.IDs)
	}
	for _, t := range vals {
		total += len(t.v) * int(es)
	}
	newZones := r.desc.fresh || !slices.Equal(zones, b.zones)
	if newZones {
		total += 8 * len(zones)
	}
	host := b.up.bytes(total)
	next := func(n int) []byte {
		h := host[:n:n]
		host = host[n:]
		return h
	}
	up := func(name string, h []byte) error { return b.htod(r.buf[name].data, h) }
	if c.Global != nil {
		gb := next(8 * len(c.Global.IDs))
		for i, g := range c.Global.IDs {
			for j := 0; j < 8; j++ {
				gb[8*i+j] = byte(uint64(g) >> (8 * j))
			}
		}
		if err := up("gids", gb); err != nil {
			return nil, err
		}
	} else {
		ib := next(4 * len(c.Routing.IDs))
		for i, x := range c.Routing.IDs {
			u := uint32(x)
			ib[4*i], ib[4*i+1], ib[4*i+2], ib[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		if err := up("ids", ib); err != nil {
			return nil, err
		}
	}
	for _, t := range vals {
		if t.v == nil {
			continue
		}
		if err := up(t.name, encodeTo(next(len(t.v)*int(es)), d, t.v)); err != nil {
			return nil, err
		}
	}
	mb := next(16)
	copy(mb, i32Bytes([]int32{0, 0, math.MaxInt32, 0}))
	if err := up("meta", mb); err != nil {
		return nil, err
	}
	// Poison every path buffer; internal ones get 0xFF bytes (they are fully written).
	for _, db := range r.guarded {
		if db.buf == 0 {
			if !isInput(db.name) {
				if err := cu.MemsetD8Async(db.data, 0xff, db.n, b.stream); err != nil {
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
	// The zone descriptors change only when an allocation or a size does: uploaded then.
	if newZones {
		zb := next(8 * len(zones))
		for i, x := range zones {
			for j := 0; j < 8; j++ {
				zb[8*i+j] = byte(x >> (8 * j))
			}
		}
		if err := b.htod(r.desc.data, zb); err != nil {
			return nil, err
		}
		b.zones = append(b.zones[:0], zones...)
	}
	if err := b.launch("guard_fill", dim{x: min(len(zones)/3, 1024)}, 256, 0, r.desc.data, int64(len(zones)/3)); err != nil {
		return nil, err
	}
	if err := cu.MemsetD32Async(r.bad.data, 0xffffffff, 2*int64(len(r.stages)+1), b.stream); err != nil {
		return nil, err
	}
	return r, nil
}

// isInput reports whether a pooled buffer holds an input of the case (uploaded, not poisoned).
func isInput(name string) bool {
	switch name {
	case "x", "w1", "w2", "dy", "rw", "ids", "gids", "b1", "b2", "meta":
		return true
	}
	return false
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
		// rotated by (run + t) mod K, run = the case's runs before on this lane, as gpu/sim does
		rot = int64(b.order.Next(fault.CaseKey(r.c)) % uint64(K))
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
		var err error
		if std {
			err = r.wgrad("d_h2", H, "act", I, "dW2", H, I)
		} else {
			err = r.wgrad("act", I, "d_h2", H, "dW2", I, H)
		}
		if err == nil && has(o, fault.StaleEmptyWgrad) {
			err = r.staleEmpty("dW2", H*I*r.es)
		}
		return err
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
		var err error
		if std {
			err = r.wgrad("d_h1", 2*I, "xs", H, "dW1", 2*I, H)
		} else {
			err = r.wgrad("xs", H, "d_h1", 2*I, "dW1", H, 2*I)
		}
		if err == nil && has(o, fault.StaleEmptyWgrad) {
			err = r.staleEmpty("dW1", 2*I*H*r.es)
		}
		return err
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

// guardCheck queues a check of every guard zone into slot (a stage's index, or
// len(r.stages) for the end of the run); nothing waits for it.
func (r *pathRun) guardCheck(slot int) error {
	nz := len(r.guarded) * 2
	return r.b.launch("guard_check", dim{x: min(nz, 1024)}, 256, 0, r.desc.data, int64(nz), r.bad.data+cu.DevicePtr(8*slot))
}

// guardVerdict reads the slots (downloaded after the stream synchronized) and reports the
// first damaged one as a crash CaseError naming the stage after which it was seen.
func (r *pathRun) guardVerdict(slots []byte, name func(slot int) string) error {
	for slot := 0; 8*slot+8 <= len(slots); slot++ {
		bad := uint64(0)
		for i := 7; i >= 0; i-- {
			bad = bad<<8 | uint64(slots[8*slot+i])
		}
		if bad == math.MaxUint64 {
			continue
		}
		stage := name(slot)
		zone, off := bad>>32, bad&0xffffffff
		if int(zone/2) >= len(r.guarded) {
			return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf("guard check after stage %s returned zone %d of %d", stage, zone, 2*len(r.guarded))}
		}
		d := r.guarded[zone/2]
		where := "before"
		if zone%2 == 1 {
			where = "after"
		}
		return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf(
			"out-of-bounds write detected after stage %s: guard zone %s buffer %s (%d bytes) damaged at byte %d",
			stage, where, d.name, d.n, off)}
	}
	return nil
}

// checkNow checks the guard zones at once (synchronizing the stream) and reports damage as
// seen after stage (for Bench).
func (r *pathRun) checkNow(stage string) error {
	if err := cu.MemsetD32Async(r.bad.data, 0xffffffff, 2, r.b.stream); err != nil {
		return err
	}
	if err := r.guardCheck(0); err != nil {
		return err
	}
	var v [8]byte
	if err := r.b.dtoh(v[:], r.bad.data); err != nil {
		return err
	}
	if err := r.b.stream.Synchronize(); err != nil {
		return err
	}
	return r.guardVerdict(v[:], func(int) string { return stage })
}

func (r *pathRun) stageName(slot int) string {
	if slot < len(r.stages) {
		return r.stages[slot].name
	}
	return "end of run"
}

// runPath queues every stage on the lane's stream — with guard checks, a check after each
// into its own slot — then the downloads, and synchronizes the stream once (after every stage
// with Options.StageSync). Damaged guard zones are reported before any result is decoded.
func (b *Backend) runPath(c *moe.Case, o runOpts, _ any) (*gpu.Result, error) {
	r, err := b.prepare(c, o)
	if err != nil {
		return nil, b.fail("setup", err)
	}
	for i, s := range r.stages {
		if err := s.run(); err != nil {
			return nil, b.fail(s.name, err)
		}
		if !b.opts.NoGuardChecks {
			if err := r.guardCheck(i); err != nil {
				return nil, b.fail(s.name, err)
			}
		}
		if b.opts.StageSync {
			if err := b.stream.Synchronize(); err != nil {
				return nil, b.fail(s.name, err)
			}
		}
	}
	n := len(r.stages)
	if err := r.guardCheck(n); err != nil {
		return nil, b.fail("end", err)
	}
	d := r.downloads()
	size := 8 * (n + 1)
	for _, x := range d {
		size += int(r.buf[x.name].n)
	}
	host := b.down.bytes(size)
	slots := host[:8*(n+1)]
	if err := b.dtoh(slots, r.bad.data); err != nil {
		return nil, b.fail("download", err)
	}
	if err := r.queue(d, host[8*(n+1):]); err != nil {
		return nil, b.fail("download", err)
	}
	if err := b.stream.Synchronize(); err != nil {
		stage := "unknown (stages not synchronized; -stage-sync names it)"
		if b.opts.StageSync {
			stage = "end"
		}
		return nil, b.fail(stage, err)
	}
	if err := r.guardVerdict(slots, r.stageName); err != nil {
		return nil, b.fail("end", err)
	}
	return r.result(d), nil
}

// download is one device buffer copied to the host at the end of a run.
type download struct {
	name string
	host []byte
}

// downloads lists the buffers a result needs: outputs, d_rw and inv; with stages, the
// intermediates, perm and offsets.
func (r *pathRun) downloads() []download {
	names := []string{"y", "dX", "dW1", "dW2", "dB1", "dB2", "d_rw", "inv"}
	if r.o.Stages {
		names = append(names, "perm", "offs", "xs", "h1", "act", "h2", "o", "d_o", "d_h2", "d_act", "d_h1", "d_xs")
	}
	var d []download
	for _, n := range names {
		if _, ok := r.buf[n]; ok {
			d = append(d, download{name: n})
		}
	}
	return d
}

// queue places the downloads in host (the rest of the lane's download buffer) and queues
// the copies on the stream.
func (r *pathRun) queue(d []download, host []byte) error {
	for i := range d {
		db := r.buf[d[i].name]
		d[i].host, host = host[:db.n:db.n], host[db.n:]
		if err := r.b.dtoh(d[i].host, db.data); err != nil {
			return err
		}
	}
	return nil
}

// result decodes the downloads (after the stream synchronized).
func (r *pathRun) result(d []download) *gpu.Result {
	got := map[string][]byte{}
	for _, x := range d {
		got[x.name] = x.host
	}
	f := func(name string) []float32 {
		if h, ok := got[name]; ok {
			return decode(r.c.DType, h)
		}
		return nil
	}
	res := &gpu.Result{Y: f("y"), DX: f("dX"), DW1: f("dW1"), DW2: f("dW2"), DB1: f("dB1"), DB2: f("dB2")}
	drw, inv := f("d_rw"), i32s(got["inv"])
	res.DRW = make([]float32, r.S)
	for s := range res.DRW {
		res.DRW[s] = drw[inv[s]]
	}
	if !r.o.Stages {
		return res
	}
	res.Stages = &gpu.Stages{Perm: i32s(got["perm"]), Offsets: i32s(got["offs"]),
		Xs: f("xs"), H1: f("h1"), Act: f("act"), H2: f("h2"), O: f("o"), DO: f("d_o"),
		DH2: f("d_h2"), DAct: f("d_act"), DH1: f("d_h1"), DXs: f("d_xs")}
	return res
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
