//go:build unix

package worker

import (
	"errors"
	"syscall"
)

// isPipe checks that fd is an open pipe (a lane's descriptor) without taking ownership of it.
func isPipe(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return errors.New("not a pipe")
	}
	return nil
}
