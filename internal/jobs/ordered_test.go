package jobs

import (
	"math/rand"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestOrdered checks the commit order, the stop and that no job runs two indices at once.
func TestOrdered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, jobs    int
		stopAt     int // commit returns false here (-1: never)
		wantCommit int
	}{
		{"ordered/one-job", 50, 1, -1, 50},
		{"ordered/four-jobs", 200, 4, -1, 200},
		{"ordered/zero-jobs-means-one", 10, 0, -1, 10},
		{"ordered/stop", 200, 4, 37, 38},
		{"ordered/empty", 0, 3, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy := make([]atomic.Int32, max(tc.jobs, 1))
			var got []int
			Ordered(tc.n, tc.jobs, func(job, i int) int {
				if busy[job].Add(1) != 1 {
					t.Errorf("job %d runs two indices at once", job)
				}
				time.Sleep(time.Duration(rand.Intn(200)) * time.Microsecond)
				busy[job].Add(-1)
				return i * i
			}, func(i, v int) bool {
				if v != i*i {
					t.Errorf("index %d: value %d", i, v)
				}
				got = append(got, i)
				return i != tc.stopAt
			})
			want := make([]int, tc.wantCommit)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(got, want) {
				t.Fatalf("committed %v, want %v", got, want)
			}
		})
	}
}
