package moe

// KeepTokens returns the case restricted to the tokens keep (indices into [0, T), in the
// order given): their rows of X and DY, their routing slots (local and global). The weights
// and biases are shared with c, not copied: neither case may be modified afterwards. It is
// how a case from a file is shrunk (props.ShrinkTokens); keep must be non-empty and its
// indices valid (it panics otherwise, as slicing does).
func (c *Case) KeepTokens(keep []int) *Case {
	d := *c
	H, K := c.H, c.K
	d.T = len(keep)
	d.X = make([]float64, len(keep)*H)
	d.DY = make([]float64, len(keep)*H)
	d.Routing = Routing{IDs: make([]int32, len(keep)*K), Weights: make([]float64, len(keep)*K)}
	if c.Global != nil {
		g := *c.Global
		g.IDs, g.Weights = make([]int64, len(keep)*K), make([]float64, len(keep)*K)
		d.Global = &g
	}
	for i, t := range keep {
		copy(d.X[i*H:(i+1)*H], c.X[t*H:(t+1)*H])
		copy(d.DY[i*H:(i+1)*H], c.DY[t*H:(t+1)*H])
		copy(d.Routing.IDs[i*K:(i+1)*K], c.Routing.IDs[t*K:(t+1)*K])
		copy(d.Routing.Weights[i*K:(i+1)*K], c.Routing.Weights[t*K:(t+1)*K])
		if c.Global != nil {
			copy(d.Global.IDs[i*K:(i+1)*K], c.Global.IDs[t*K:(t+1)*K])
			copy(d.Global.Weights[i*K:(i+1)*K], c.Global.Weights[t*K:(t+1)*K])
		}
	}
	return &d
}
