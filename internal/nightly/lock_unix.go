//go:build unix

package nightly

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockResults takes an exclusive advisory lock on an open results file, failing at once
// (not waiting) when another process holds it. The lock ends when the file is closed or the
// process dies (kill -9 included), so a crashed run never leaves a stale lock.
func lockResults(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	if err != nil {
		return fmt.Errorf("nightly: locking %s: %w", f.Name(), err)
	}
	return nil
}
