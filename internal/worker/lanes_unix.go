//go:build unix

package worker

import (
	"errors"
	"os"
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

// growPipe asks for a pipe capacity of pipeSize (F_SETPIPE_SZ, Linux) for x, when x is an
// *os.File; advice only: where it is refused (another system, a lower limit) the pipe keeps
// its size.
func growPipe(x any) {
	const setPipeSize = 1031 // F_SETPIPE_SZ
	f, ok := x.(*os.File)
	if !ok {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.Syscall(syscall.SYS_FCNTL, fd, setPipeSize, pipeSize) })
	}
}
