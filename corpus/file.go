package corpus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// WriteFile writes e to path in the corpus format via a temporary file in the same directory
// and a rename, so a reader never sees a partial file. Nothing is written if Format refuses e.
func WriteFile(path string, e *Entry) (err error) {
	var buf bytes.Buffer
	if err := Format(&buf, e); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

// ReadFile parses the corpus file at path (errors name the path and line).
func ReadFile(path string) (*Entry, error) { return ReadFileWith(path, ParseOptions{}) }

// ReadFileWith is ReadFile with parse options (size limits).
func ReadFileWith(path string, o ParseOptions) (*Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	return ParseWith(f, path, o)
}

// LoadDir loads every *.case file of dir (not its subdirectories), sorted by name. It returns
// the entries that parsed and, if any file failed, an error joining every failure (each
// naming its file and line).
func LoadDir(dir string) ([]*Entry, error) { return LoadDirWith(dir, ParseOptions{}) }

// LoadDirWith is LoadDir with parse options (size limits).
func LoadDirWith(dir string, o ParseOptions) ([]*Entry, error) {
	paths, err := List(dir)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	var errs []error
	for _, p := range paths {
		e, err := ReadFileWith(p, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// List returns the paths of the *.case files of dir (not its subdirectories), sorted by name.
func List(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	var names []string
	for _, de := range des {
		if !de.IsDir() && strings.HasSuffix(de.Name(), Ext) {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, n)
	}
	return paths, nil
}
