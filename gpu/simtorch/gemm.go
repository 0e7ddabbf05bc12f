package simtorch

import "github.com/moecheck/moecheck/moe"

// groupedMM computes rows [b, end) of out (row length n) = round_d(in_rows · Wᵀ) with
// fp32 accumulation, W the group's n×k weight (row j = output column j; dgrad: transposed,
// W is then k'×n and read by column). The accumulation order depends on the group's number of
// rows, as a GEMM library's choice of kernel does (see dot). accBias, when not nil, is added
// to the fp32 accumulator before the rounding (docs/path.md's GEMM with bias).
func (r *run) groupedMM(out []float32, n int, in []float32, k int, w []float32, b, end int, dgrad bool, accBias []float32) {
	m := end - b
	if m <= 0 {
		return
	}
	wt := w[:n*k]
	if dgrad { // W is k×n (e.g. W2 H×I for d_act = d_h2 · W2): its columns, gathered once for all rows
		wt = make([]float32, n*k)
		for q := 0; q < k; q++ {
			for j, v := range w[q*n : (q+1)*n] {
				wt[j*k+q] = v
			}
		}
	}
	for i := b; i < end; i++ {
		a := in[i*k : (i+1)*k]
		for j := 0; j < n; j++ {
			acc := r.dot(a, wt[j*k:(j+1)*k], m)
			if accBias != nil {
				acc += accBias[j]
			}
			out[i*n+j] = r.round(acc)
		}
	}
}

// wgrad computes dW (nOut×nIn, standard layout) = round_d(Σ_{rows b..end} dout[i]ᵀ·in[i]),
// accumulated in an order that depends on the number of rows; zero rows give exact zeros.
// The columns of both row blocks are gathered once (the dot products read them contiguously).
func (r *run) wgrad(dw, dout []float32, nOut int, in []float32, nIn int, b, end int) {
	m := end - b
	if m <= 0 {
		for o := 0; o < nOut; o++ {
			for l := 0; l < nIn; l++ {
				dw[o*nIn+l] = r.round(r.dot(nil, nil, m))
			}
		}
		return
	}
	xt, yt := make([]float32, nOut*m), make([]float32, nIn*m)
	for q := 0; q < m; q++ {
		for o, v := range dout[(b+q)*nOut : (b+q+1)*nOut] {
			xt[o*m+q] = v
		}
		for l, v := range in[(b+q)*nIn : (b+q+1)*nIn] {
			yt[l*m+q] = v
		}
	}
	for o := 0; o < nOut; o++ {
		x := xt[o*m : (o+1)*m]
		for l := 0; l < nIn; l++ {
			dw[o*nIn+l] = r.round(r.dot(x, yt[l*m:(l+1)*m], m))
		}
	}
}

// weightGrad is dW of expert e as the model's choice makes it: the grouped GEMM's wgrad, or
// batched_mm's per-slot form (wgradSlots).
func (r *run) weightGrad(dw, dout []float32, nOut int, in []float32, nIn int, b, end int) {
	if r.fr.wgradSlots {
		r.wgradSlots(dw, dout, nOut, in, nIn, b, end)
		return
	}
	r.wgrad(dw, dout, nOut, in, nIn, b, end)
}

// wgradSlots is dW as autograd forms it when the weights are gathered per slot
// (transformers' batched_mm: W[expert_ids], one bmm per slot): each slot's outer product
// dout[i]ᵀ·in[i] is a GEMM with a reduction of length 1 (the fp32 product rounded to the
// dtype), and the gather's backward, CUDA's index_put_ with accumulate, adds the expert's
// per-slot products into zeros: when the weight row (nOut·nIn elements) has at most 32
// elements, in fp32 with one rounding (indexing_backward_kernel_small_stride), else in the
// dtype with a rounding after every add (indexing_backward_kernel). CUDA adds in sorted slot
// order; the model adds in a per-run order (the contract allows any).
func (r *run) wgradSlots(dw, dout []float32, nOut int, in []float32, nIn int, b, end int) {
	m := end - b
	if m == 0 {
		return
	}
	order := r.rng.Perm(m)
	small := nOut*nIn <= 32
	for o := 0; o < nOut; o++ {
		for l := 0; l < nIn; l++ {
			var s float32
			for _, q := range order {
				t := r.round(dout[(b+q)*nOut+o] * in[(b+q)*nIn+l])
				if small {
					s += t
				} else {
					s = r.round(s + t)
				}
			}
			dw[o*nIn+l] = r.round(s)
		}
	}
}

// dot is the GEMM's reduction as the model's choice makes it: dot's fp32 accumulation, or,
// with the splitDtype freedom in bf16 and fp16, cuBLAS's reduced-precision reduction
// (splitDot).
func (r *run) dot(a, b []float32, m int) float32 {
	if r.fr.splitDtype && r.d != moe.FP32 {
		return r.splitDot(a, b, m)
	}
	return dot(a, b, m)
}

// splitDot is a split-K reduction whose partial sums are reduced in the dtype (cuBLAS with
// allow_{bf16,fp16}_reduced_precision_reduction): the products are split into chunks of
// 1 + m%4 (the chunk length depends on the group's rows, as a library's choice would; length 1
// is the worst case the contract admits, one partial per product), each chunk accumulated in
// fp32 and rounded to the dtype, and the partials added with a rounding to the dtype after
// every add, forwards or backwards by m's parity.
func (r *run) splitDot(a, b []float32, m int) float32 {
	chunk := 1 + m%4
	var parts []float32
	for q := 0; q < len(a); q += chunk {
		var p float32
		for l := q; l < min(q+chunk, len(a)); l++ {
			p += float32(a[l] * b[l])
		}
		parts = append(parts, r.round(p))
	}
	var s float32
	if m%2 == 0 {
		for _, p := range parts {
			s = r.round(s + p)
		}
	} else {
		for i := len(parts) - 1; i >= 0; i-- {
			s = r.round(s + parts[i])
		}
	}
	return s
}

// dot is an fp32 dot product (each product rounded to fp32, then added) in one of three
// orders chosen by the group's row count m: ascending, descending, or split-K (blocks of 8
// summed sequentially, the block sums added pairwise).
func dot(a, b []float32, m int) float32 {
	var s float32
	switch m % 3 {
	case 0:
		for q := range a {
			s += float32(a[q] * b[q])
		}
	case 1:
		for q := len(a) - 1; q >= 0; q-- {
			s += float32(a[q] * b[q])
		}
	default:
		var parts []float32
		for q := 0; q < len(a); q += 8 {
			var p float32
			for l := q; l < min(q+8, len(a)); l++ {
				p += float32(a[l] * b[l])
			}
			parts = append(parts, p)
		}
		s = treeSum(parts)
	}
	return s
}
