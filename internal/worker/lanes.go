package worker

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/gpu"
)

// LanesEnv is the environment variable through which NewLanes asks a worker for lanes: its
// value is the number of lanes, at least 2. A worker that serves lanes confirms the number in
// every lane's hello (Header.Lanes); one that does not ignores the variable and is refused by
// the client.
//
// The lane transport, for other worker implementations: lane 0 is the worker's stdin and
// stdout; lane k ≥ 1 reads its requests from file descriptor 2k+1 and writes its replies to
// descriptor 2k+2 (LaneFDs), both inherited pipes. Every lane is an independent stream of the
// protocol: its own hello, its own request ids, one case at a time, and a bye (or end of
// input) that ends it. The lanes' cases run concurrently; the worker exits when every lane
// ended, or at once after a crash (the device state every lane shares is lost).
const LanesEnv = "MOECHECK_WORKER_LANES"

// LaneFDs returns the worker's file descriptors of lane k ≥ 1: requests are read from in,
// replies written to out.
func LaneFDs(k int) (in, out int) { return 2*k + 1, 2*k + 2 }

// LanesFromEnv parses LanesEnv as getenv returns it: 1 when it is unset or empty.
func LanesFromEnv(getenv func(string) string) (int, error) {
	v := strings.TrimSpace(getenv(LanesEnv))
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLanes {
		return 0, fmt.Errorf("%s=%q: want a number of lanes between 1 and %d", LanesEnv, v, MaxLanes)
	}
	return n, nil
}

// Lane is the worker's end of one lane.
type Lane struct {
	R io.Reader
	W io.Writer
}

// OpenLanes returns a worker's n lanes: stdin and stdout, then the inherited descriptors of
// LaneFDs. A descriptor that is not an open pipe is an error naming it (the worker was not
// started by the client, which passes the lanes' pipes); it is then left alone.
func OpenLanes(n int, stdin io.Reader, stdout io.Writer) ([]Lane, error) {
	if n < 1 || n > MaxLanes {
		return nil, fmt.Errorf("worker: %d lanes: want between 1 and %d", n, MaxLanes)
	}
	for k := 1; k < n; k++ {
		in, out := LaneFDs(k)
		for _, fd := range []int{in, out} {
			if err := isPipe(fd); err != nil {
				return nil, fmt.Errorf("worker: lane %d: descriptor %d: %w (a worker of %d lanes is started by the client, which passes each lane's pipes)", k, fd, err, n)
			}
		}
	}
	lanes := []Lane{{stdin, stdout}}
	for k := 1; k < n; k++ {
		in, out := LaneFDs(k)
		lanes = append(lanes, Lane{os.NewFile(uintptr(in), fmt.Sprintf("lane-%d-in", k)), os.NewFile(uintptr(out), fmt.Sprintf("lane-%d-out", k))})
	}
	return lanes, nil
}

// ServeLanes serves lane k with backend bs[k], all lanes at once (Serve on each, the hello
// declaring len(lanes) lanes when above 1). It returns nil once every lane ended cleanly, and
// at once the first error of a lane: ErrCrashed after a crash (the backends share a device
// whose state is lost: the process must exit, which ends the other lanes' cases; the client
// re-runs those alone), ErrHangup, or an I/O error. From then on no lane writes a frame (one
// being written is finished), so a case of another lane is never answered from a lost device
// or a closed backend: it sees the process end instead.
func ServeLanes(lanes []Lane, bs []gpu.Backend, o ServeOptions) error {
	if len(lanes) == 0 || len(lanes) != len(bs) {
		return fmt.Errorf("worker: %d lanes and %d backends: want as many, at least one", len(lanes), len(bs))
	}
	o.Lanes = len(lanes)
	if len(lanes) > 1 {
		o.gate = &frameGate{}
	}
	errs := make(chan error, len(lanes))
	for k := range lanes {
		go func() { errs <- Serve(lanes[k].R, lanes[k].W, bs[k], o) }()
	}
	for range lanes {
		if err := <-errs; err != nil {
			// No lane answers anything more: the process exits with the first error.
			o.gate.close()
			return err
		}
	}
	return nil
}
