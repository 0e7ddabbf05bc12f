package backends

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PythonEnvVar names the interpreter torch backends run (default "python3").
const PythonEnvVar = "MOECHECK_PYTHON"

// TorchPrefix starts a torch backend name: "torch:<target>" runs
// `$MOECHECK_PYTHON -m moecheck.worker --target <target>` (python/moecheck/worker.py).
const TorchPrefix = "torch:"

// Resolved is how to start a backend: the in-process sim (Argv nil) or a worker command with
// extra environment entries (appended to the caller's environment).
type Resolved struct {
	Argv []string
	Env  []string
}

// Resolve returns how to start the backend a name describes: Command's names, plus
// "torch:<target>[ <worker flags>]" (target: transformers:<impl>, callable:<module>:<function>,
// ledger:<entry>). For torch backends, getenv(MOECHECK_PYTHON) picks the interpreter and,
// when dir is in a checkout (python/moecheck in dir or up to three parents), PYTHONPATH is
// extended with its python/ so the package runs without installing.
func Resolve(name, dir string, getenv func(string) string) (Resolved, error) {
	name = strings.TrimSpace(name)
	if !strings.HasPrefix(name, TorchPrefix) {
		argv, err := Command(name)
		return Resolved{Argv: argv}, err
	}
	fields := strings.Fields(strings.TrimPrefix(name, TorchPrefix))
	if len(fields) == 0 {
		return Resolved{}, fmt.Errorf("backend %q: needs a target after torch: (transformers:<impl>, callable:<module>:<function> or ledger:<entry>)", name)
	}
	py := "python3"
	if getenv != nil {
		if v := strings.TrimSpace(getenv(PythonEnvVar)); v != "" {
			py = v
		}
	}
	argv := append([]string{py, "-m", "moecheck.worker", "--target", fields[0]}, fields[1:]...)
	r := Resolved{Argv: argv}
	if pkg := findPackage(dir); pkg != "" {
		pp := pkg
		if getenv != nil && getenv("PYTHONPATH") != "" {
			pp += string(os.PathListSeparator) + getenv("PYTHONPATH")
		}
		r.Env = []string{"PYTHONPATH=" + pp}
	}
	return r, nil
}

// findPackage returns the python/ folder of the checkout dir is in (dir or up to three
// parents: `go test ./fuzz` runs in fuzz/), "" when there is none.
func findPackage(dir string) string {
	for i := 0; dir != "" && i < 4; i++ {
		pkg := filepath.Join(dir, "python")
		if st, err := os.Stat(filepath.Join(pkg, "moecheck", "worker.py")); err == nil && !st.IsDir() {
			return pkg
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}
