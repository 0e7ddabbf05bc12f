// Package presets holds the MoE layer shapes of real models (docs: ANCHORS §5) and builds
// moecheck cases at those shapes for one expert-parallel rank.
//
// A Preset is the global shape of one MoE layer: hidden size H, expert intermediate size I,
// routed experts G, top-k, activation, weight layout, biases, and the expert-parallel world
// size it is usually served with (local experts E = G/EP). Case builds one rank's case:
// T tokens routed top-k over the G global experts with softmax weights, mapped to the rank
// by moe.FromGlobal (so the EP router hook and its sentinels are exercised), data from a
// seed.
//
// Real shapes are heavy for the CPU model (gpu/sim) and for the float64 oracle: their cost
// grows with the local expert weights (E·I·H) and the real rows (≈ T·K/EP). A T = 16 case at
// H = 2048 costs seconds on one core. Tokens picks T from the backend kind and the run's
// budget (4 to 16 on the CPU, thousands on a GPU), and FitEP raises the EP world size (fewer
// local experts per rank, same H, I, G and top-k) until the case fits a memory budget, so
// that every preset can run on the CPU path with its real H and I.
package presets
