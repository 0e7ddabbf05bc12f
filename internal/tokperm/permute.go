package tokperm

import "github.com/moecheck/moecheck/moe"

// Permute returns a copy of c with token t moved to token perm[t]: the rows of X and dY, the
// routing's ids and weights and, where there is one, the global routing's, row by row; the
// configuration, weights and biases are c's. perm must be a permutation of [0, c.T).
func Permute(c *moe.Case, perm []int) *moe.Case {
	pc := c.Clone()
	rows := func(dst, src []float64, n int) {
		for t, pt := range perm {
			copy(dst[pt*n:(pt+1)*n], src[t*n:(t+1)*n])
		}
	}
	rows(pc.X, c.X, c.H)
	rows(pc.DY, c.DY, c.H)
	rows(pc.Routing.Weights, c.Routing.Weights, c.K)
	for t, pt := range perm {
		copy(pc.Routing.IDs[pt*c.K:(pt+1)*c.K], c.Routing.IDs[t*c.K:(t+1)*c.K])
	}
	if c.Global != nil {
		rows(pc.Global.Weights, c.Global.Weights, c.K)
		for t, pt := range perm {
			copy(pc.Global.IDs[pt*c.K:(pt+1)*c.K], c.Global.IDs[t*c.K:(t+1)*c.K])
		}
	}
	return pc
}
