package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moecheck/moecheck/internal/nightly"
)

// Options tune Build. The zero value is valid: title "moecheck nightly report", artifacts
// relative to the current directory, the real clock, plots for up to 50 failures.
type Options struct {
	Title    string
	Dir      string           // directory the records' artifact paths are relative to (the results file's)
	Now      func() time.Time // the report's "generated" time
	MaxPlots int              // failures that get plots (0: 50; negative: none)

	dirs map[string]string // per record id, the directory its artifact path is relative to (ReadFiles)
}

// Report is the content of a report, ready to render.
type Report struct {
	Title     string
	Generated time.Time
	Run       *nightly.RunInfo
	Resumes   int // start records after the first (merged: after each shard's first)
	// Shards lists the shard indices merged into the report (ReadFiles; nil for one file).
	Shards     []int
	Summary    *nightly.Summary
	Properties []PropertyCount
	Failures   []Failure
	Skipped    []nightly.Record
	// Sampled lists the items that passed on a sample (nightly --sample: records with a
	// "sample"), not on the whole case; SampledTensors their coverage per tensor.
	Sampled        []nightly.Record
	SampledTensors []SampledTensor
	// Sharpness is the oracle's sharpness of the last invocation that pooled it (nightly
	// --sharpness), nil if none did.
	Sharpness *nightly.SharpnessRecord
	// Warnings name what the report could not take as it stands: a cut-short last line, case
	// records of an unknown status (counted as skipped).
	Warnings []string
}

// PropertyCount is how often one property ran and failed over the results.
type PropertyCount struct {
	Name        string
	Ran, Failed int
}

// Failure is one failing item with its plots.
type Failure struct {
	nightly.Record
	Artifact *nightly.Artifact
	Note     string // why there are no plots
	Heatmap  Plot
	NaNMap   Plot
}

// Plot is one rendered PNG.
type Plot struct {
	Name string // file name under plots/
	PNG  []byte
}

// dir is the directory record id's artifact path is relative to.
func (o Options) dir(id string) string {
	if d, ok := o.dirs[id]; ok {
		return d
	}
	return o.Dir
}

// Build reads the artifacts of the failing records and renders their plots.
func Build(recs []nightly.Record, o Options) (*Report, error) {
	if o.Title == "" {
		o.Title = "moecheck nightly report"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPlots == 0 {
		o.MaxPlots = 50
	}
	r := &Report{Title: o.Title, Generated: o.Now().UTC(), Summary: nightly.Summarize(recs)}
	for _, rec := range recs {
		if rec.Type == nightly.TypeEnd && rec.Sharpness != nil {
			r.Sharpness = rec.Sharpness
		}
		if rec.Type == nightly.TypeStart {
			if r.Run == nil {
				r.Run = rec.Run
			} else {
				r.Resumes++
			}
		}
	}
	unknown := map[string]int{}
	var unknownOrder []string
	for _, rec := range nightly.Cases(recs) {
		switch rec.Status {
		case nightly.StatusPass, nightly.StatusFail, nightly.StatusSkip:
		default:
			if unknown[rec.Status] == 0 {
				unknownOrder = append(unknownOrder, rec.Status)
			}
			unknown[rec.Status]++
		}
	}
	for _, st := range unknownOrder {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d case record(s) of unknown status %q, counted as skipped", unknown[st], st))
	}
	counts := map[string]*PropertyCount{}
	var names []string
	plots := 0
	for _, rec := range nightly.Cases(recs) {
		for _, p := range rec.Properties {
			pc := counts[p]
			if pc == nil {
				pc = &PropertyCount{Name: p}
				counts[p] = pc
				names = append(names, p)
			}
			pc.Ran++
			if rec.Status == nightly.StatusFail && rec.Property == p {
				pc.Failed++
			}
		}
		switch rec.Status {
		case nightly.StatusSkip:
			r.Skipped = append(r.Skipped, rec)
		case nightly.StatusFail:
			f := Failure{Record: rec}
			if rec.Artifact == "" {
				f.Note = "no artifact"
			} else if p := filepath.FromSlash(rec.Artifact); !filepath.IsLocal(p) {
				// A record names its artifact relative to the results file's folder; a path
				// leaving it (or absolute) is not followed.
				f.Note = fmt.Sprintf("artifact path %q leaves the results folder: not read", rec.Artifact)
			} else if plots >= o.MaxPlots || o.MaxPlots < 0 {
				f.Note = "plots left out (the report's plot limit)"
			} else if err := f.plots(filepath.Join(o.dir(rec.ID), filepath.FromSlash(rec.Artifact))); err != nil {
				f.Note = err.Error()
			} else {
				plots++
			}
			r.Failures = append(r.Failures, f)
		}
	}
	for _, n := range names {
		r.Properties = append(r.Properties, *counts[n])
	}
	r.sampled(nightly.Cases(recs))
	return r, nil
}

// plots loads the artifact and renders its maps.
func (f *Failure) plots(path string) error {
	a, err := nightly.ReadArtifact(path)
	if err != nil {
		return err
	}
	f.Artifact = a
	if len(a.Maps) == 0 {
		f.Note = a.Note
		return nil
	}
	base := strings.TrimSuffix(filepath.Base(path), ".json")
	title := f.ID
	if m := a.Map(a.Worst); m != nil {
		png, err := Heatmap(m, title)
		if err != nil {
			return err
		}
		f.Heatmap = Plot{Name: base + "-heat.png", PNG: png}
	}
	if m := a.Map(a.NaN); m != nil && m.NonFinite > 0 {
		png, err := NaNMap(m, title)
		if err != nil {
			return err
		}
		f.NaNMap = Plot{Name: base + "-nan.png", PNG: png}
	}
	return nil
}

// Write renders the report into dir: report.md, report.html and plots/*.png, each file via
// temp file + rename.
func Write(dir string, r *Report) error {
	for _, f := range r.Failures {
		for _, p := range []Plot{f.Heatmap, f.NaNMap} {
			if p.Name == "" {
				continue
			}
			png := p.PNG
			if err := nightly.WriteFile(filepath.Join(dir, "plots", p.Name), func(w io.Writer) error {
				_, err := w.Write(png)
				return err
			}); err != nil {
				return err
			}
		}
	}
	if err := nightly.WriteFile(filepath.Join(dir, "report.md"), r.WriteMarkdown); err != nil {
		return err
	}
	return nightly.WriteFile(filepath.Join(dir, "report.html"), r.WriteHTML)
}

// ReadFile reads a results file and builds its report, with artifacts relative to the file.
func ReadFile(path string, o Options) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	recs, good, complete, err := nightly.ReadResults(f)
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	if o.Dir == "" {
		o.Dir = filepath.Dir(path)
	}
	r, err := Build(recs, o)
	if err != nil {
		return nil, err
	}
	if !complete {
		r.Warnings = append([]string{fmt.Sprintf("the last line of %s (from byte %d) is cut short, a run killed while writing it: left out", path, good)}, r.Warnings...)
	}
	return r, nil
}

func (r *Report) kinds() []string {
	var k []string
	for kind := range r.Summary.ByKind {
		k = append(k, kind)
	}
	order := map[string]int{nightly.KindCorpus: 0, nightly.KindPreset: 1, nightly.KindRandom: 2}
	sort.Slice(k, func(i, j int) bool {
		oi, iok := order[k[i]]
		oj, jok := order[k[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return k[i] < k[j]
	})
	return k
}

func (r *Report) runLine() string {
	if r.Run == nil {
		return "no start record"
	}
	ri := r.Run
	s := fmt.Sprintf("backend `%s`, seed %d", ri.Backend, ri.Seed)
	if ri.Faults != "" {
		s += fmt.Sprintf(", faults `%s`", ri.Faults)
	}
	if ri.Contract != "" {
		s += fmt.Sprintf(", contract `%s`", ri.Contract)
	}
	switch {
	case r.Shards != nil:
		var ss []string
		for _, i := range r.Shards {
			ss = append(ss, fmt.Sprint(i))
		}
		s += fmt.Sprintf(", shards %s of %d merged", strings.Join(ss, ","), max(ri.Shards, 1))
	case ri.Shards > 1:
		s += fmt.Sprintf(", shard %d/%d", ri.Shard, ri.Shards)
	}
	if ri.Cases > 0 {
		s += fmt.Sprintf(", %d random case indices", ri.Cases)
	}
	if ri.BudgetS > 0 {
		s += fmt.Sprintf(", random budget %s", time.Duration(ri.BudgetS*float64(time.Second)))
	}
	if ri.NoStages {
		s += ", no stages"
	}
	if ri.Sample != nil {
		s += fmt.Sprintf(", sampled check (fraction %g, seed %d)", ri.Sample.Fraction, ri.Sample.Seed)
	}
	if r.Resumes > 0 {
		s += fmt.Sprintf(", resumed %d time(s)", r.Resumes)
	}
	return s
}

// WriteMarkdown renders the report as Markdown (plots linked from plots/).
func (r *Report) WriteMarkdown(w io.Writer) error {
	ew := &errWriter{w: w}
	p := ew.printf
	s := r.Summary
	p("# %s\n\n", r.Title)
	p("Generated %s. Run: %s.\n\n", r.Generated.Format(time.RFC3339), r.runLine())
	for _, w := range r.Warnings {
		p("**Warning:** %s\n\n", md(w))
	}
	p("## Summary\n\n")
	p("| kind | items | pass | fail | skip |\n|---|---:|---:|---:|---:|\n")
	for _, k := range r.kinds() {
		c := s.ByKind[k]
		p("| %s | %d | %d | %d | %d |\n", k, c.Total, c.Pass, c.Fail, c.Skip)
	}
	p("| **all** | **%d** | **%d** | **%d** | **%d** |\n\n", s.Total, s.Pass, s.Fail, s.Skip)
	p("Case time %.1f s.\n\n", s.ElapsedS)
	if len(r.Properties) > 0 {
		p("| property | ran | failed |\n|---|---:|---:|\n")
		for _, pc := range r.Properties {
			p("| %s | %d | %d |\n", pc.Name, pc.Ran, pc.Failed)
		}
		p("\n")
	}
	if len(r.Sampled) > 0 {
		p("## PASS ON A SAMPLE\n\n")
		p("%d passing item(s) were judged on a sample, not the whole case: their stage-local checks judged a seeded fraction of each tensor's rows, tokens and weight-gradient rows (group edges and non-finite values always), each element within the full check's bound (docs/oracle.md §10). A fault the full check flags in m units of a tensor outside the always-judged ones escapes with probability ≤ (1 − f_min)^m, ≤ δ from m = miss-m on.\n\n", len(r.Sampled))
		p("| tensor | unit | items | f_min (smallest) | miss-m (largest) | δ |\n|---|---|---:|---:|---:|---:|\n")
		for _, t := range r.SampledTensors {
			p("| %s | %s | %d | %.4g | %d | %g |\n", md(t.Tensor), md(t.Unit), t.Items, t.MinFrac, t.MaxMissM, t.Delta)
		}
		p("\n| item | fraction | seed | elements judged | miss-m (largest) |\n|---|---:|---:|---:|---:|\n")
		for _, rec := range r.Sampled {
			p("| %s | %g | %d | %.3g%% | %d |\n", md(rec.ID), rec.Sample.Fraction, rec.Sample.Seed, 100*rec.Sample.JudgedFraction(), rec.Sample.MaxMissM())
		}
		p("\n")
	}
	if sh := r.Sharpness; sh != nil {
		p("## Sharpness\n\nUnder contract `%s`, pooled over %d random cases: radius ÷ |reference| (÷ the tensor's RMS where the reference is 0).\n\n", sh.Contract, sh.Cases)
		p("| tensor | elements | unconstrained | of which reference out of range | wide (radius > RMS/10) | median | p99 |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range sh.Tensors {
			p("| %s | %d | %d | %d | %d | %s | %s |\n", t.Tensor, t.N, t.Unconstrained, t.RefOutOfRange, t.Wide, fmtRatio(float64(t.Median)), fmtRatio(float64(t.P99)))
		}
		p("\n")
	}
	if len(r.Failures) > 0 {
		p("## Failures\n\n| item | property | first stage | where |\n|---|---|---|---|\n")
		for _, f := range r.Failures {
			p("| [%s](#%s) | %s | %s | %s |\n", f.ID, anchor(f.ID), md(f.Property), md(f.FirstStage), md(where(f)))
		}
		p("\n")
		for _, f := range r.Failures {
			p("### %s\n\n", f.ID)
			if f.Config != "" {
				p("- case: `%s`\n", f.Config)
			}
			if f.Spec != "" {
				p("- spec: `%s`\n", f.Spec)
			}
			if f.Shrunk != "" {
				p("- shrunk: `%s`\n", f.Shrunk)
			}
			if f.Source != "" {
				p("- source: `%s`\n", f.Source)
			}
			if f.Property != "" {
				p("- property **%s**: %s\n", md(f.Property), md(f.Message))
			} else {
				p("- %s\n", md(f.Message)) // failed without running a property (an unreadable corpus file)
			}
			if f.FirstStage != "" {
				p("- first stage: **%s**", md(f.FirstStage))
				if f.Artifact != nil && f.Artifact.Where != "" {
					p(" at `%s`", f.Artifact.Where)
				}
				p("\n")
			}
			for _, x := range f.Failures {
				p("  - %s `%s`: %d element(s), worst `%s`\n", x.Check, x.Tensor, x.Count, x.Where)
			}
			if sm := f.Sample; sm != nil {
				p("- judged on a sample (fraction %g, seed %d): each flagged element is outside the full check's bound\n", sm.Fraction, sm.Seed)
			}
			if f.Repro != "" {
				p("- reproduce: `%s`\n", f.Repro)
			}
			p("\n")
			if f.Heatmap.Name != "" {
				p("![error/bound heatmap of %s](plots/%s)\n\n", f.ID, f.Heatmap.Name)
			}
			if f.NaNMap.Name != "" {
				p("![non-finite map of %s](plots/%s)\n\n", f.ID, f.NaNMap.Name)
			}
			if f.Note != "" {
				p("_%s_\n\n", md(f.Note))
			}
		}
	}
	if len(r.Skipped) > 0 {
		p("## Skipped\n\n")
		for _, k := range r.Skipped {
			p("- %s: %s\n", k.ID, md(k.Message))
		}
		p("\n")
	}
	return ew.err
}

func where(f Failure) string {
	if f.Artifact != nil && f.Artifact.Where != "" {
		return f.Artifact.Where
	}
	if len(f.Failures) > 0 {
		return f.Failures[0].Where
	}
	return ""
}

// md escapes table-breaking characters.
func md(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

func anchor(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"png": func(b []byte) template.URL {
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
	},
	"anchor": anchor,
	"where":  where,
	"rfc":    func(t time.Time) string { return t.Format(time.RFC3339) },
	"ratio":  func(x nightly.Float) string { return fmtRatio(float64(x)) },
	"pct":    func(x float64) float64 { return 100 * x },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.R.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
td.n{text-align:right}.fail{color:#b00}.pass{color:#070}code{background:#f4f4f4;padding:0 .2em}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}section{border-top:1px solid #ddd;margin-top:1.5em}
</style></head><body>
<h1>{{.R.Title}}</h1>
<p>Generated {{rfc .R.Generated}}. Run: {{.RunLine}}.</p>
{{range .R.Warnings}}<p><b>Warning:</b> {{.}}</p>
{{end}}<h2>Summary</h2>
<table><tr><th>kind</th><th>items</th><th>pass</th><th>fail</th><th>skip</th></tr>
{{range .Kinds}}<tr><td>{{.Kind}}</td><td class="n">{{.C.Total}}</td><td class="n pass">{{.C.Pass}}</td><td class="n fail">{{.C.Fail}}</td><td class="n">{{.C.Skip}}</td></tr>
{{end}}<tr><th>all</th><th>{{.R.Summary.Total}}</th><th>{{.R.Summary.Pass}}</th><th>{{.R.Summary.Fail}}</th><th>{{.R.Summary.Skip}}</th></tr></table>
{{if .R.Properties}}<table><tr><th>property</th><th>ran</th><th>failed</th></tr>
{{range .R.Properties}}<tr><td>{{.Name}}</td><td class="n">{{.Ran}}</td><td class="n fail">{{.Failed}}</td></tr>
{{end}}</table>{{end}}
{{if .R.Sampled}}<h2>PASS ON A SAMPLE</h2>
<p>{{len .R.Sampled}} passing item(s) were judged on a sample, not the whole case: their stage-local checks judged a seeded fraction of each tensor's rows, tokens and weight-gradient rows (group edges and non-finite values always), each element within the full check's bound (docs/oracle.md §10). A fault the full check flags in m units of a tensor outside the always-judged ones escapes with probability ≤ (1 − f_min)^m, ≤ δ from m = miss-m on.</p>
<table><tr><th>tensor</th><th>unit</th><th>items</th><th>f_min (smallest)</th><th>miss-m (largest)</th><th>δ</th></tr>
{{range .R.SampledTensors}}<tr><td>{{.Tensor}}</td><td>{{.Unit}}</td><td class="n">{{.Items}}</td><td class="n">{{printf "%.4g" .MinFrac}}</td><td class="n">{{.MaxMissM}}</td><td class="n">{{.Delta}}</td></tr>
{{end}}</table>
<table><tr><th>item</th><th>fraction</th><th>seed</th><th>elements judged</th><th>miss-m (largest)</th></tr>
{{range .R.Sampled}}<tr><td>{{.ID}}</td><td class="n">{{.Sample.Fraction}}</td><td class="n">{{.Sample.Seed}}</td><td class="n">{{printf "%.3g" (pct .Sample.JudgedFraction)}}%</td><td class="n">{{.Sample.MaxMissM}}</td></tr>
{{end}}</table>{{end}}
{{with .R.Sharpness}}<h2>Sharpness</h2>
<p>Under contract <code>{{.Contract}}</code>, pooled over {{.Cases}} random cases: radius ÷ |reference| (÷ the tensor's RMS where the reference is 0).</p>
<table><tr><th>tensor</th><th>elements</th><th>unconstrained</th><th>of which reference out of range</th><th>wide (radius &gt; RMS/10)</th><th>median</th><th>p99</th></tr>
{{range .Tensors}}<tr><td>{{.Tensor}}</td><td class="n">{{.N}}</td><td class="n">{{.Unconstrained}}</td><td class="n">{{.RefOutOfRange}}</td><td class="n">{{.Wide}}</td><td class="n">{{ratio .Median}}</td><td class="n">{{ratio .P99}}</td></tr>
{{end}}</table>{{end}}
{{if .R.Failures}}<h2>Failures</h2>
<table><tr><th>item</th><th>property</th><th>first stage</th><th>where</th></tr>
{{range .R.Failures}}<tr><td><a href="#{{anchor .ID}}">{{.ID}}</a></td><td>{{.Property}}</td><td>{{.FirstStage}}</td><td><code>{{where .}}</code></td></tr>
{{end}}</table>
{{range .R.Failures}}<section id="{{anchor .ID}}"><h3>{{.ID}}</h3><ul>
{{if .Config}}<li>case: <code>{{.Config}}</code></li>{{end}}
{{if .Spec}}<li>spec: <code>{{.Spec}}</code></li>{{end}}
{{if .Shrunk}}<li>shrunk: <code>{{.Shrunk}}</code></li>{{end}}
{{if .Source}}<li>source: <code>{{.Source}}</code></li>{{end}}
<li>{{if .Property}}property <b>{{.Property}}</b>: {{end}}{{.Message}}</li>
{{if .FirstStage}}<li>first stage: <b>{{.FirstStage}}</b>{{if .Artifact}}{{if .Artifact.Where}} at <code>{{.Artifact.Where}}</code>{{end}}{{end}}</li>{{end}}
{{range .Failures}}<li>{{.Check}} <code>{{.Tensor}}</code>: {{.Count}} element(s), worst <code>{{.Where}}</code></li>
{{end}}{{with .Sample}}<li>judged on a sample (fraction {{.Fraction}}, seed {{.Seed}}): each flagged element is outside the full check's bound</li>
{{end}}{{if .Repro}}<li>reproduce: <code>{{.Repro}}</code></li>{{end}}
</ul>
{{if .Heatmap.PNG}}<img alt="error/bound heatmap of {{.ID}}" src="{{png .Heatmap.PNG}}">{{end}}
{{if .NaNMap.PNG}}<img alt="non-finite map of {{.ID}}" src="{{png .NaNMap.PNG}}">{{end}}
{{if .Note}}<p><i>{{.Note}}</i></p>{{end}}
</section>
{{end}}{{end}}
{{if .R.Skipped}}<h2>Skipped</h2><ul>{{range .R.Skipped}}<li>{{.ID}}: {{.Message}}</li>{{end}}</ul>{{end}}
</body></html>
`))

// WriteHTML renders the report as one static HTML page with the plots embedded.
func (r *Report) WriteHTML(w io.Writer) error {
	type kc struct {
		Kind string
		C    *nightly.Counts
	}
	var ks []kc
	for _, k := range r.kinds() {
		ks = append(ks, kc{k, r.Summary.ByKind[k]})
	}
	return htmlTmpl.Execute(w, map[string]any{"R": r, "Kinds": ks, "RunLine": template.HTML(template.HTMLEscapeString(strings.ReplaceAll(r.runLine(), "`", "")))})
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}

// fmtRatio formats a sharpness ratio ("-" for NaN: no constrained element).
func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.3g", x)
}
