package docker

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/report"
)

// seriesInExpr finds the series names a PromQL expression reads: satrain's
// and those of the Go and process collectors on the same registry.
var seriesInExpr = regexp.MustCompile(`\b(?:satrain|process|go)_[a-z0-9_]+`)

// registrySeries returns the metric family names satrain's /metrics serves:
// report.NewMetrics with compare's series, gathered after one event of each
// kind has given every labelled series a child (a vector without children
// is not gathered). It fails when a satrain_* name in the string literals of
// report is not gathered, so a series those events do not reach
// cannot go unchecked.
func registrySeries(t *testing.T) map[string]bool {
	t.Helper()
	m := report.NewMetrics("test", "1.13.0", false)
	m.CompareSeries().Planned.Set(2)
	p := report.NewPrometheus(m)
	for _, e := range []event.Event{
		event.RunStarted{RunID: "r", Kind: event.KindSelectionAware, Strategy: "selection_aware", LR: 1e-3, NumIterations: 2, InferenceBatch: 8},
		event.IterationStarted{Kind: event.KindSelectionAware, Iteration: 1, Total: 2},
		event.SampleScored{Iteration: 1, Sampled: 10, Mean: 1, Median: 1},
		event.SubsetSelected{Iteration: 1, K: 2, TopKMean: 1, TopKMin: 1, Overlap: 0.5, StratumShare: map[string]float64{"tech": 1}},
		event.StepSkipped{Iteration: 1, Total: 1},
		event.Trained{Iteration: 1, Loss: 2, Sequences: 4},
		event.ValidationStarted{Iteration: 1, Sequences: 5},
		event.Validated{Iteration: 1, Loss: 2, Best: true, BestLoss: 2},
		event.IterationEnded{Iteration: 1, TrainLoss: 2, ValLoss: 2, Validated: true, ERMean: 1, ERMedian: 1, TopKERMean: 1, TopKERMin: 1,
			PhaseSeconds: map[string]float64{event.PhaseInference: 1, event.PhaseTraining: 1, event.PhaseValidation: 1}, IterationSeconds: 3,
			OnDevice: true, DeviceMemoryAllocated: 1, DeviceMemoryPeak: 2},
	} {
		p.Report(e)
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, f := range goFilesIn(t, "report") {
		for _, s := range goStringLiterals(t, f) {
			if metricNameRE.MatchString(s) && !names[s] {
				t.Fatalf("%s names %s, which the registry did not gather: give it a value in registrySeries' events", f, s)
			}
		}
	}
	return names
}

// baseSeries maps a histogram's _bucket, _sum and _count series to its
// family name when that is the exported one.
func baseSeries(name string, exported map[string]bool) string {
	if exported[name] {
		return name
	}
	for _, suf := range histogramSufs {
		if base, ok := strings.CutSuffix(name, suf); ok && exported[base] {
			return base
		}
	}
	return name
}

// TestDashboardCoversEverySeries: every satrain_* series the registry
// exports has a dashboard panel, and every series a panel queries (also the
// Go and process collectors') is exported.
func TestDashboardCoversEverySeries(t *testing.T) {
	exported := registrySeries(t)
	shown := map[string][]string{}
	for _, q := range dashboardQueries(t) {
		for _, s := range seriesInExpr.FindAllString(q.expr, -1) {
			b := baseSeries(s, exported)
			if !exported[b] {
				t.Errorf("dashboard %s queries %s, which satrain does not export: %s", q.where, s, q.expr)
			}
			shown[b] = append(shown[b], q.where)
		}
	}
	var names []string
	for n := range exported {
		if strings.HasPrefix(n, "satrain_") {
			names = append(names, n)
			if len(shown[n]) == 0 {
				t.Errorf("exported series %s has no dashboard panel", n)
			}
		}
	}
	sort.Strings(names)
	if len(names) < 25 {
		t.Errorf("the registry exports only %d satrain_* series: %v", len(names), names)
	}
	if len(shown["process_resident_memory_bytes"]) == 0 {
		t.Error("no panel shows the process memory (process_resident_memory_bytes)")
	}
	for _, n := range names {
		t.Logf("%-42s %s", n, strings.Join(shown[n], ", "))
	}
}

// TestMetricsNamesList: docker/metrics_names.txt, the list of series for
// people outside the code, is the registry's satrain_* set.
func TestMetricsNamesList(t *testing.T) {
	exported := registrySeries(t)
	listed := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, "docker/metrics_names.txt")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			listed[line] = true
			if !exported[line] {
				t.Errorf("metrics_names.txt lists %s, which satrain does not export", line)
			}
		}
	}
	for n := range exported {
		if strings.HasPrefix(n, "satrain_") && !listed[n] {
			t.Errorf("metrics_names.txt does not list %s", n)
		}
	}
}
