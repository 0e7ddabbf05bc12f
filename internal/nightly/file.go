package nightly

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes a file for users atomically: write calls fill a temporary file in the
// same directory, which is synced, closed and renamed over path. A reader never sees a
// half-written file, and a failure leaves the old file (if any) in place.
func WriteFile(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("nightly: writing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("nightly: syncing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	return nil
}

// appender appends records to a results file, one fsynced line each.
type appender struct {
	f *os.File
}

// errLocked is lockResults' answer when another process holds the results file.
var errLocked = errors.New("locked by another process")

// maxTail bounds the partial last line a resume cuts off: a record line is far shorter than
// MaxLineBytes, so a longer tail is not a record cut short but something else.
const maxTail = MaxLineBytes

// openResults opens path for appending, locked against a second writer (which is refused at
// once). With resume it reads the records already there and cuts a truncated last line off;
// without resume the file must not hold any record yet. A file that is not a results file of
// ours — bytes that are no record, before or without a newline — is refused, never cut.
func openResults(path string, resume bool) (*appender, []Record, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("nightly: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("nightly: %w", err)
	}
	if err := lockResults(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, nil, &UsageError{Err: fmt.Errorf("results file %s is in use by another moecheck run (%w): wait for it to end, or choose another file", path, err)}
		}
		return nil, nil, err
	}
	recs, good, complete, err := ReadResults(f)
	if err != nil {
		f.Close()
		return nil, nil, &UsageError{Err: fmt.Errorf("%s is not a moecheck results file this version can continue (%w): nothing was written; choose another file", path, err)}
	}
	if len(recs) > 0 && !resume {
		f.Close()
		return nil, nil, &UsageError{Err: fmt.Errorf("results file %s already holds %d records: pass --resume to continue that run, or choose a new file", path, len(recs))}
	}
	if !complete {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("nightly: %w", err)
		}
		tail := st.Size() - good
		// Only the last line of a run killed mid-write is cut: after at least one record
		// (the start record comes first), and beginning as every record does.
		head := make([]byte, 1)
		if _, err := f.ReadAt(head, good); err != nil || len(recs) == 0 || tail > maxTail || head[0] != '{' {
			f.Close()
			return nil, nil, &UsageError{Err: fmt.Errorf("%s ends in %d bytes that are not a results record (not a results file of ours?): nothing was written; choose another file", path, tail)}
		}
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("nightly: cutting the partial last line of %s: %w", path, err)
		}
	}
	return &appender{f: f}, recs, nil
}

// append writes one record as a line and syncs it to disk.
func (a *appender) append(r Record) error {
	b, err := MarshalLine(r)
	if err != nil {
		return err
	}
	// One write per line on an O_APPEND file: the line lands whole at the end.
	if _, err := a.f.Write(b); err != nil {
		return fmt.Errorf("nightly: writing results: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("nightly: syncing results: %w", err)
	}
	return nil
}

func (a *appender) close() error { return a.f.Close() }

// UsageError is an error in what the caller asked for (a command line exits 2 on it).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
