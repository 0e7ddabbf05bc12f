//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/rawcase"
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
	stages           []stage
	counts           []int32 // rows per local expert (emptyCounts; StaleEmptyWgrad only)

	// Staging (queuePrep): the upload staging buffer holds the descriptors, the guard-zone
	// table (zoneTab, nz zones) and the staged inputs; the download staging buffer the guard
	// slots (slots of 8 bytes: one per stage and one for the end with perStage, else one)
	// and the staged results (dplan).
	up, down   *devBuf
	zoneTab    cu.DevicePtr
	nz         int64
	slots      int
	perStage   bool
	packDescs  cu.DevicePtr // the end-of-run descriptors (guard check, packing)
	nPack      int64
	packBlocks int64
	dl         []download
	dplan      stagePlan
	tails      []int // indices into dl of the downloads whose zero tail stays on the device
}

// runOpts are one run's options and the harness's faults (fault.Runner).
type runOpts struct {
	gpu.RunOptions
	faults fault.Set
	poke   *guardPoke // GuardProbe's injected out-of-bounds write (nil: none)
	// raw, when set, is the case as its bits (RunBits): its inputs are uploaded as they came
	// and the run's case (pathRun.c) is its routing only (rawcase.Checked.Meta).
	raw *rawcase.Case
}

func has(o runOpts, f fault.Fault) bool { return o.faults.Has(f) }

// prepare allocates, uploads, poisons and guards every buffer of the case and builds the
// stage list; perStage lays out a guard slot per stage (runPath then checks after each).
func (b *Backend) prepare(c *moe.Case, o runOpts, perStage bool) (*pathRun, error) {
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
	if err := r.queuePrep(perStage); err != nil {
		return nil, err
	}
	return r, nil
}

// inputs lists the case's inputs in upload order: the bits of a case given as bits, else
// the case's values encoded.
func (r *pathRun) inputs() []input {
	if r.o.raw != nil {
		return bitsInputs(r.o.raw)
	}
	return caseInputs(r.c)
}

// queuePrep lays out the run's two staging buffers, writes the inputs and the descriptors into
// the lane's pinned upload buffer and queues the preparation: one copy of the staged bytes
// (descriptors, guard-zone table, inputs up to stageMax bytes each; larger inputs one copy
// each), then one prepare_bufs launch that copies the inputs into their buffers, poisons
// every path buffer per o.Poison (Stale: kept values, non-finite ones Huge, when the buffer
// held the same size and dtype), fills internal buffers with 0xFF bytes, writes every guard
// zone and sets the guard slots to all ones. The end-of-run descriptors (guard check, results
// packed into the download staging) are uploaded with them; runPath launches them.
func (r *pathRun) queuePrep(perStage bool) error {
	b, o := r.b, r.o
	r.perStage = perStage
	zones := guardZones(r.guarded)
	r.nz = int64(len(zones) / 3)
	r.slots = 1
	if perStage {
		r.slots = len(r.stages) + 1
	}
	r.dl = r.downloads()
	dsizes := make([]int64, len(r.dl))
	for i, x := range r.dl {
		dsizes[i] = r.buf[x.name].n
	}
	r.tails = r.tails[:0]
	if r.o.raw != nil { // results as bits (RunBits) may have zero tails; values are decoded whole
		for i, x := range r.dl {
			if dsizes[i] >= zeroTailMin && !staged(dsizes[i]) && floatResult(x.name) {
				r.tails = append(r.tails, i)
			}
		}
	}
	var err error
	if r.dplan, err = planStaging(r.extentsAt()+int64(8*len(r.tails)), dsizes); err != nil {
		return err
	}
	if r.down, err = b.alloc("stage_down", 0, r.dplan.Dev); err != nil {
		return err
	}
	in := r.inputs()
	isizes := make([]int64, len(in))
	nPrep := 2 // guard fill, slots
	for i, t := range in {
		isizes[i] = t.n
		if staged(t.n) {
			nPrep++
		}
	}
	for _, db := range r.guarded {
		if !isInput(db.name) {
			nPrep++
		}
	}
	nPack := 1 // guard check
	for _, n := range dsizes {
		if staged(n) {
			nPack++
		}
	}
	zoneOff := alignUp(int64(nPrep+nPack) * descBytes)
	up, err := planStaging(zoneOff+r.nz*zoneBytes, isizes)
	if err != nil {
		return err
	}
	if r.up, err = b.alloc("stage_up", 0, up.Dev); err != nil {
		return err
	}
	host := b.up.bytes(int(up.Host))
	ud, dd := uint64(r.up.data), uint64(r.down.data)
	r.zoneTab = r.up.data + cu.DevicePtr(zoneOff)
	prep := make([]prepDesc, 0, nPrep)
	for i, t := range in {
		t.put(host[up.Off[i] : up.Off[i]+t.n])
		if up.Staged[i] {
			prep = append(prep, prepDesc{op: opCopy, dst: uint64(r.buf[t.name].data), src: ud + uint64(up.Off[i]), n: t.n})
		}
	}
	for _, db := range r.guarded {
		if isInput(db.name) {
			continue
		}
		kept := false
		if db.buf != 0 {
			kept = !db.fresh && db.lastN == db.n && db.lastDT == r.dt
			db.lastN, db.lastDT = db.n, r.dt
		}
		prep = append(prep, bufDesc(uint64(db.data), db.n, db.buf, r.dt, r.es, o.Poison, kept))
	}
	prep = append(prep,
		prepDesc{op: opGuard, src: uint64(r.zoneTab), n: r.nz, arg: guardBytes},
		// The slots and the padding up to the first result: every byte of the download
		// staging is written before it is copied (compute-sanitizer's initcheck).
		prepDesc{op: opFill, dst: dd, n: alignUp(int64(8 * r.slots)), arg: 0xff})
	pack := make([]prepDesc, 0, nPack)
	pack = append(pack, prepDesc{op: opCheck, dst: dd + uint64(8*(r.slots-1)), src: uint64(r.zoneTab), n: r.nz, arg: guardBytes})
	for i, x := range r.dl {
		if r.dplan.Staged[i] {
			// Up to 15 bytes past the result are copied too (the start of its guard zone,
			// inside the allocation and written), so that the padding is written as well.
			pack = append(pack, prepDesc{op: opCopy, dst: dd + uint64(r.dplan.Off[i]), src: uint64(r.buf[x.name].data), n: alignUp(dsizes[i])})
		}
	}
	if len(prep) != nPrep || len(pack) != nPack {
		return fmt.Errorf("cuda: %d+%d descriptors, counted %d+%d", len(prep), len(pack), nPrep, nPack)
	}
	prepBlocks, err := encodeDescs(host, prep)
	if err != nil {
		return err
	}
	if r.packBlocks, err = encodeDescs(host[nPrep*descBytes:], pack); err != nil {
		return err
	}
	r.packDescs, r.nPack = r.up.data+cu.DevicePtr(nPrep*descBytes), int64(nPack)
	encodeZones(host[zoneOff:], zones)
	if err := b.htod(r.up.data, host[:up.Dev]); err != nil {
		return err
	}
	for i, t := range in {
		if !up.Staged[i] {
			if err := b.htod(r.buf[t.name].data, host[up.Off[i]:up.Off[i]+t.n]); err != nil {
				return err
			}
		}
	}
	return b.launch("prepare_bufs", dim{x: int(prepBlocks)}, prepThreads, 0, r.up.data, int64(nPrep), o.PoisonSeed)
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
		key := uint64(0)
		if r.o.raw != nil {
			key = r.o.raw.Key()
		} else {
			key = fault.CaseKey(r.c)
		}
		rot = int64(b.order.Next(key) % uint64(K))
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

// guardCheck queues a check of every guard zone into slot (a stage's index, with per-stage
// checks); nothing waits for it. The end of the run checks inside its packing launch.
func (r *pathRun) guardCheck(slot int) error {
	return r.b.launch("guard_check", dim{x: int(min(r.nz, 1024))}, 256, 0, r.zoneTab, r.nz, r.down.data+cu.DevicePtr(8*slot))
}

// guardDamage is the first damaged guard zone a run's slots report.
type guardDamage struct {
	stage  string // the stage after which it was seen, "" for the end-of-run check
	detail string // zone, buffer and byte
}

// err is the damage as a crash CaseError; note (may be empty) is appended in parentheses.
func (g *guardDamage) err(note string) error {
	when := "after stage " + g.stage
	if g.stage == "" {
		when = "at the end of the run"
	}
	if note != "" {
		note = " (" + note + ")"
	}
	return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf("out-of-bounds write detected %s: %s%s", when, g.detail, note)}
}

// guardVerdict reads the slots (downloaded after the stream synchronized) and returns the
// first damaged one (nil: none), named by name(slot).
func (r *pathRun) guardVerdict(slots []byte, name func(slot int) string) *guardDamage {
	for slot := 0; 8*slot+8 <= len(slots); slot++ {
		bad := binary.LittleEndian.Uint64(slots[8*slot:])
		if bad == math.MaxUint64 {
			continue
		}
		stage := name(slot)
		zone, off := bad>>32, bad&0xffffffff
		if int(zone/2) >= len(r.guarded) {
			return &guardDamage{stage, fmt.Sprintf("the guard check returned zone %d of %d", zone, 2*len(r.guarded))}
		}
		d := r.guarded[zone/2]
		where := "before"
		if zone%2 == 1 {
			where = "after"
		}
		return &guardDamage{stage, fmt.Sprintf("guard zone %s buffer %s (%d bytes) damaged at byte %d", where, d.name, d.n, off)}
	}
	return nil
}

// checkNow checks the guard zones at once (synchronizing the stream) and reports damage as
// seen after stage (for Bench).
func (r *pathRun) checkNow(stage string) error {
	if err := r.b.memset8(r.down.data, 0xff, 8); err != nil {
		return err
	}
	if err := r.guardCheck(0); err != nil {
		return err
	}
	var v [8]byte
	if err := r.b.dtoh(v[:], r.down.data); err != nil {
		return err
	}
	if err := r.b.sync(); err != nil {
		return err
	}
	if g := r.guardVerdict(v[:], func(int) string { return stage }); g != nil {
		return g.err("")
	}
	return nil
}

// stageName names a slot: a stage with per-stage checks, else "" (the end of the run).
func (r *pathRun) stageName(slot int) string {
	if r.perStage && slot < len(r.stages) {
		return r.stages[slot].name
	}
	if r.perStage {
		return "end of run"
	}
	return ""
}

// runPath runs the case (runOnce). When the end-of-run guard check finds a damaged zone
// and the lane does not check after every stage, it re-runs the case with a check after
// every stage to name the stage; when the re-run does not reproduce the damage, the first
// run's damage is reported, saying so.
func (b *Backend) runPath(c *moe.Case, o runOpts, _ any) (*pathRun, error) {
	r, dmg, err := b.runOnce(c, o, b.opts.StageGuardChecks)
	if err != nil || dmg == nil {
		return r, err
	}
	if b.opts.StageGuardChecks {
		return nil, dmg.err("")
	}
	_, again, err := b.runOnce(c, o, true)
	switch {
	case again != nil && again.stage != "" && again.stage != "end of run":
		return nil, again.err("found at the end of the run; stage named by a re-run with a guard check after every stage")
	case err != nil:
		return nil, dmg.err(fmt.Sprintf("stage not named: the re-run with a guard check after every stage failed: %v", err))
	case again != nil:
		return nil, dmg.err("stage not named: the re-run with a guard check after every stage saw it only at the end")
	}
	return nil, dmg.err("stage not reproduced: a re-run with a guard check after every stage found no damage")
}

// runOnce queues every stage on the lane's stream (with perStage a guard check after each,
// into its own slot), then one launch that checks every guard zone into the end slot and
// packs the results into the download staging buffer, one copy of it to the host (and one
// per result too large to stage), and synchronizes the stream once (after every stage with
// Options.StageSync). Damaged guard zones are returned before any result is decoded; the
// run's downloads are in r.dl (its result: r.result or r.resultBits).
func (b *Backend) runOnce(c *moe.Case, o runOpts, perStage bool) (*pathRun, *guardDamage, error) {
	tl := phase.New(b.opts.Trace, "trace: cuda ")
	sp := tl.Start("setup (allocate, upload, fill)")
	r, err := b.prepare(c, o, perStage)
	sp.End()
	sp = tl.Start("queue stages")
	if err != nil {
		return nil, nil, b.fail("setup", err)
	}
	for i, s := range r.stages {
		if err := s.run(); err != nil {
			return nil, nil, b.fail(s.name, err)
		}
		if err := r.poke(s.name); err != nil {
			return nil, nil, b.fail(s.name, err)
		}
		if perStage {
			if err := r.guardCheck(i); err != nil {
				return nil, nil, b.fail(s.name, err)
			}
		}
		if b.opts.StageSync {
			if err := b.sync(); err != nil {
				return nil, nil, b.fail(s.name, err)
			}
		}
	}
	sp.End()
	sp = tl.Start("queue pack and download")
	if err := b.launch("prepare_bufs", dim{x: int(r.packBlocks)}, prepThreads, 0, r.packDescs, r.nPack, o.PoisonSeed); err != nil {
		return nil, nil, b.fail("end", err)
	}
	host := b.down.bytes(int(r.dplan.Host))
	if len(r.tails) > 0 {
		// Zero tails: each big result's extent (1 + its last nonzero byte) into the staging
		// head, downloaded with the staged part; then only the bytes before the extents.
		at := r.extentsAt()
		if err := b.memset8(r.down.data+cu.DevicePtr(at), 0, alignUp(at+int64(8*len(r.tails)))-at); err != nil {
			return nil, nil, b.fail("end", err)
		}
		for j, i := range r.tails {
			db := r.buf[r.dl[i].name]
			blocks := int(min(cdiv(db.n, 16*256), 1024))
			if err := b.launch("zero_extent", dim{x: blocks}, 256, 0, db.data, db.n, r.down.data+cu.DevicePtr(at+int64(8*j))); err != nil {
				return nil, nil, b.fail("end", err)
			}
		}
	}
	if err := b.dtoh(host[:r.dplan.Dev], r.down.data); err != nil {
		return nil, nil, b.fail("download", err)
	}
	var ext map[int]int64 // download index → bytes to copy (the rest are zero); nil: none
	if len(r.tails) > 0 {
		sp.End()
		if g, err := r.settle(tl, "wait for the stream (stages, guard check, extents)", host); err != nil || g != nil {
			return nil, g, err
		}
		at := r.extentsAt()
		ext = make(map[int]int64, len(r.tails))
		for j, i := range r.tails {
			n := r.buf[r.dl[i].name].n
			e := int64(binary.LittleEndian.Uint64(host[at+int64(8*j):]))
			e = min(n, (e+r.es-1)/r.es*r.es) // whole elements
			ext[i] = e
		}
		sp = tl.Start("queue the downloads before the zero tails")
	}
	for i := range r.dl {
		db := r.buf[r.dl[i].name]
		off := r.dplan.Off[i]
		r.dl[i].host, r.dl[i].size = host[off:off+db.n:off+db.n], db.n
		if e, ok := ext[i]; ok {
			r.dl[i].host = host[off : off+e : off+e]
		}
		if !r.dplan.Staged[i] {
			if err := b.dtoh(r.dl[i].host, db.data); err != nil {
				return nil, nil, b.fail("download", err)
			}
		}
	}
	sp.End()
	if g, err := r.settle(tl, "wait for the stream", host); err != nil || g != nil {
		return nil, g, err
	}
	return r, nil, nil
}

// settle waits for the lane's stream (timed as phase name) and returns the guard zones'
// damage the end-of-run check wrote into the staged download's head, host.
func (r *pathRun) settle(tl *phase.Timeline, name string, host []byte) (*guardDamage, error) {
	sp := tl.Start(name)
	err := r.b.sync()
	sp.End()
	if err != nil {
		return nil, r.b.fail(r.unsyncedStage(), err)
	}
	return r.guardVerdict(host[:8*r.slots], r.stageName), nil
}

// unsyncedStage names the stage of a device fault seen when the stream synchronized at the
// end of a run.
func (r *pathRun) unsyncedStage() string {
	if r.b.opts.StageSync {
		return "end"
	}
	return "unknown (stages not synchronized; -stage-sync names it)"
}

// zeroTailMin is the smallest result, in bytes, whose zero tail (the bytes after its last
// nonzero one) is measured on the device and left there: below it the extra launch and
// synchronization cost more than the copy (the worker leaves smaller tails out of the frame
// itself: internal/worker, zerotail.go).
const zeroTailMin = 16 << 20

// floatResult reports whether download name is a float result tensor a zero tail may be left
// off: not the plan or the inverse permutation (int32), not d_rw (gathered whole by inv).
func floatResult(name string) bool {
	switch name {
	case "perm", "offs", "inv", "d_rw":
		return false
	}
	return true
}

// extentsAt is the offset in the download staging of the zero tails' extents (8 bytes each,
// after the guard slots).
func (r *pathRun) extentsAt() int64 { return int64(8 * r.slots) }

// download is one device buffer copied to the host at the end of a run.
type download struct {
	name string
	host []byte // the bytes copied: all of the buffer's, or those before its zero tail
	size int64  // the buffer's bytes (len(host) plus the zero tail left on the device)
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

// got maps the downloads' buffer names to their bytes (after the stream synchronized).
func (r *pathRun) got() map[string][]byte {
	got := make(map[string][]byte, len(r.dl))
	for _, x := range r.dl {
		got[x.name] = x.host
	}
	return got
}

// result decodes the downloads.
func (r *pathRun) result() *gpu.Result { return resultOf(r.c.DType, int(r.S), r.o.Stages, r.got()) }

// resultBits is the downloads as bits: slices of the lane's download staging, valid until
// the lane's next run (rawcase.Runner).
func (r *pathRun) resultBits() *rawcase.Result {
	res := resultBits(r.c.DType, int(r.S), r.o.Stages, r.got())
	for _, i := range r.tails {
		x := r.dl[i]
		for _, n := range downloadNames {
			if n.buf == x.name && res.Tensor(n.t) != nil {
				res.SetPrefix(n.t, x.host, int(x.size))
			}
		}
	}
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
