package oracle

// PreparingChecker returns a Checker whose Prepare prepares a case of any size (prepareAll),
// for the external tests: the property suite's small cases then exercise the prepared work.
func PreparingChecker() *Checker { return &Checker{prepareAll: true} }

// PreparedHits is the number of h1 spans this Checker's checks took from a Prepared.
func (k *Checker) PreparedHits() int64 { return k.preparedHits.Load() }
