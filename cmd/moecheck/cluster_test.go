package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// commandLines returns the moecheck command lines of a script or manifest (one logical
// line each, backslash continuations joined).
func commandLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "moecheck ") {
			out = append(out, l)
		}
	}
	return out
}

var shellVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// shellWords splits a command line as a POSIX shell would for the subset these examples use:
// words, '…' and "…" quoting, $VAR, ${VAR} and ${VAR:-default} expansion (outside single
// quotes), and a * glob in an unquoted part.
func shellWords(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	expand := func(s string) string {
		return shellVar.ReplaceAllStringFunc(s, func(m string) string {
			g := shellVar.FindStringSubmatch(m)
			name := g[1] + g[4]
			if v, ok := env[name]; ok && v != "" {
				return v
			}
			if g[2] != "" {
				return g[3]
			}
			t.Fatalf("%s: $%s is not set", line, name)
			return ""
		})
	}
	var words []string
	var cur strings.Builder
	inWord, glob := false, false
	flush := func() {
		if !inWord {
			return
		}
		w := cur.String()
		if glob {
			m, err := filepath.Glob(w)
			if err != nil || len(m) == 0 {
				t.Fatalf("%s: glob %s matches nothing (%v)", line, w, err)
			}
			words = append(words, m...)
		} else {
			words = append(words, w)
		}
		cur.Reset()
		inWord, glob = false, false
	}
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t':
			flush()
			i++
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("%s: unclosed quote", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord, i = true, i+j+2
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				t.Fatalf("%s: unclosed quote", line)
			}
			cur.WriteString(expand(line[i+1 : i+1+j]))
			inWord, i = true, i+j+2
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t'\"", rune(line[j])) {
				j++
			}
			part := line[i:j]
			glob = glob || strings.Contains(part, "*")
			cur.WriteString(expand(part))
			inWord, i = true, j
		}
	}
	flush()
	return words
}

// yamlEnv reads the `- name: X` / `value: "Y"` pairs of a manifest.
func yamlEnv(text string) map[string]string {
	env := map[string]string{}
	re := regexp.MustCompile(`(?m)^\s*- name: (\S+)\s*\n\s*value: "?([^"\n]*)"?\s*$`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		env[m[1]] = m[2]
	}
	return env
}

// TestClusterExamples runs the moecheck lines of examples/cluster locally: each shard with
// the environment Slurm or Kubernetes sets for it (sim backend, few cases), then the merge
// line, and checks the merged report covers every shard.
func TestClusterExamples(t *testing.T) {
	const dir = "../../examples/cluster"
	slurm, err := os.ReadFile(filepath.Join(dir, "slurm-nightly.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := os.ReadFile(filepath.Join(dir, "k8s-nightly-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	arr := regexp.MustCompile(`(?m)^#SBATCH --array=(\d+)-(\d+)$`).FindStringSubmatch(string(slurm))
	if arr == nil {
		t.Fatal("slurm-nightly.sbatch: no #SBATCH --array=LO-HI line")
	}
	lo, _ := strconv.Atoi(arr[1])
	hi, _ := strconv.Atoi(arr[2])
	comp := regexp.MustCompile(`(?m)^\s*completions: (\d+)$`).FindStringSubmatch(string(k8s))
	if comp == nil || !strings.Contains(string(k8s), "completionMode: Indexed") {
		t.Fatal("k8s-nightly-job.yaml: want completionMode: Indexed and completions: N")
	}
	kn, _ := strconv.Atoi(comp[1])
	kenv := yamlEnv(string(k8s))
	if kenv["MOECHECK_SHARDS"] != comp[1] {
		t.Fatalf("k8s-nightly-job.yaml: MOECHECK_SHARDS %q, want completions %s (the shard count --shard env reads)", kenv["MOECHECK_SHARDS"], comp[1])
	}
	local := map[string]string{"MOECHECK_BACKEND": "sim", "MOECHECK_CASES": "10", "MOECHECK_TIME": "5m",
		"MOECHECK_CORPUS": "../../corpus/seeds/single-token.case"}
	for _, tc := range []struct {
		name   string
		shards []map[string]string // the environment of each shard
		merge  string              // the file holding the merge line
		file   string
	}{
		{name: "cluster/slurm-array", file: "slurm-nightly.sbatch", merge: "slurm-merge.sbatch", shards: func() []map[string]string {
			var out []map[string]string
			for i := lo; i <= hi; i++ {
				out = append(out, map[string]string{"SLURM_ARRAY_TASK_ID": strconv.Itoa(i), "SLURM_ARRAY_TASK_MIN": strconv.Itoa(lo),
					"SLURM_ARRAY_TASK_MAX": strconv.Itoa(hi), "SLURM_ARRAY_TASK_COUNT": strconv.Itoa(hi - lo + 1)})
			}
			return out
		}()},
		{name: "cluster/k8s-indexed-job", file: "k8s-nightly-job.yaml", merge: "k8s-nightly-job.yaml", shards: func() []map[string]string {
			var out []map[string]string
			for i := 0; i < kn; i++ {
				e := map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(i)}
				for k, v := range kenv {
					e[k] = v
				}
				out = append(out, e)
			}
			return out
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			envFor := func(shard map[string]string) map[string]string {
				e := map[string]string{}
				for k, v := range shard {
					e[k] = v
				}
				for k, v := range local {
					e[k] = v
				}
				e["OUT"] = out
				return e
			}
			var nightlyLine, mergeLine string
			for _, l := range commandLines(t, filepath.Join(dir, tc.file)) {
				if strings.HasPrefix(l, "moecheck nightly ") {
					nightlyLine = l
				}
			}
			for _, l := range commandLines(t, filepath.Join(dir, tc.merge)) {
				if strings.HasPrefix(l, "moecheck report ") {
					mergeLine = l
				}
			}
			if nightlyLine == "" || mergeLine == "" {
				t.Fatalf("%s / %s: want a moecheck nightly line and a moecheck report line", tc.file, tc.merge)
			}
			for i, shard := range tc.shards {
				env := envFor(shard)
				args := shellWords(t, nightlyLine, env)
				if code, o, e := run(t, env, args[1:]...); code != 0 {
					t.Fatalf("shard %d: %q: exit %d\n%s\n%s", i, args, code, o, e)
				}
			}
			args := shellWords(t, mergeLine, envFor(nil))
			code, o, e := run(t, nil, args[1:]...)
			if code != 0 {
				t.Fatalf("merge %q: exit %d\n%s\n%s", args, code, o, e)
			}
			md, err := os.ReadFile(filepath.Join(out, "report", "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			n := len(tc.shards)
			var all []string
			for i := 0; i < n; i++ {
				all = append(all, strconv.Itoa(i))
			}
			want := "shards " + strings.Join(all, ",") + " of " + strconv.Itoa(n) + " merged"
			if !strings.Contains(string(md), want) || strings.Contains(e, "warning") {
				t.Fatalf("merged report lacks %q or warns:\n%s\n%s", want, md, e)
			}
			// every random case index once, and the corpus case once
			if !strings.Contains(o, "11 item(s)") {
				t.Fatalf("merge: %s, want 11 items (10 random cases and the corpus case)", o)
			}
		})
	}
}
