//go:build !unix

package worker

import "errors"

// isPipe: lanes pass inherited descriptors, which only unix systems do (exec.Cmd.ExtraFiles).
func isPipe(int) error { return errors.New("lanes need a unix system (inherited pipe descriptors)") }

// growPipe: pipe capacities are set on Linux only.
func growPipe(any) {}
