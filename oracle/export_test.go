package oracle

import (
	"sync"
	"time"

	"github.com/moecheck/moecheck/moe"
)

// PreparingChecker returns a Checker whose Prepare prepares a case of any size (prepareAll),
// for the external tests: the property suite's small cases then exercise the prepared work.
func PreparingChecker() *Checker { return &Checker{prepareAll: true} }

// PreparedHits is the number of h1 spans this Checker's checks took from a Prepared.
func (k *Checker) PreparedHits() int64 { return k.preparedHits.Load() }

// PartsChecker returns a Checker whose GEMM stages and weight gradients split every expert
// into as many parts as they allow (partSize of one multiply-add, one row, two parts), or,
// with whole, one task per expert (wholeExperts), for the external tests; split counts the
// stage/expert pairs that ran as more than one task since its last call (call it after
// each check).
func PartsChecker(whole bool) (k *Checker, split func() int) {
	var mu sync.Mutex
	n := map[[2]int]int{}
	k = &Checker{partSize: taskSize{work: 1, rows: 1, parts: 2}, wholeExperts: whole,
		taskLog: func(t moe.Tensor, s span, _ time.Duration) {
			if s.e >= 0 {
				mu.Lock()
				n[[2]int{int(t), s.e}]++
				mu.Unlock()
			}
		}}
	return k, func() int {
		mu.Lock()
		defer mu.Unlock()
		m := 0
		for _, c := range n {
			if c > 1 {
				m++
			}
		}
		clear(n)
		return m
	}
}
