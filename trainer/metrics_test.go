package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
)

// contractMetrics are the series CONTRACTS.md promises (docker dashboards
// and alerts use them), with their types and label names.
var contractMetrics = map[string]struct {
	typ    dto.MetricType
	labels string
}{
	"satrain_iteration":                     {dto.MetricType_GAUGE, ""},
	"satrain_train_loss":                    {dto.MetricType_GAUGE, ""},
	"satrain_validation_loss":               {dto.MetricType_GAUGE, ""},
	"satrain_expected_return_mean":          {dto.MetricType_GAUGE, ""},
	"satrain_expected_return_median":        {dto.MetricType_GAUGE, ""},
	"satrain_topk_expected_return_mean":     {dto.MetricType_GAUGE, ""},
	"satrain_topk_expected_return_min":      {dto.MetricType_GAUGE, ""},
	"satrain_sequences_scored_total":        {dto.MetricType_COUNTER, ""},
	"satrain_sequences_trained_total":       {dto.MetricType_COUNTER, ""},
	"satrain_steps_skipped_total":           {dto.MetricType_COUNTER, ""},
	"satrain_iteration_duration_seconds":    {dto.MetricType_HISTOGRAM, ""},
	"satrain_phase_duration_seconds":        {dto.MetricType_GAUGE, "phase"},
	"satrain_phase_seconds_total":           {dto.MetricType_COUNTER, "phase"},
	"satrain_device_memory_allocated_bytes": {dto.MetricType_GAUGE, ""},
	"satrain_device_memory_peak_bytes":      {dto.MetricType_GAUGE, ""},
	"satrain_inference_batch_size":          {dto.MetricType_GAUGE, ""},
	"satrain_build_info":                    {dto.MetricType_GAUGE, "cuda,goversion,torch_version,version"},
}

// TestMetricsLintAndContract lints the registry the way
// testutil.GatherAndLint does (gather, then promlint); testutil itself is not
// imported because it pulls github.com/kylelemons/godebug, which go.mod does
// not require.
func TestMetricsLintAndContract(t *testing.T) {
	m := report.NewMetrics("v-test", "1.13.0", false)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
	}
	for name, want := range contractMetrics {
		f := got[name]
		if f == nil {
			t.Errorf("metric %s (CONTRACTS.md) is not registered", name)
			continue
		}
		if f.GetType() != want.typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), want.typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		for _, mt := range f.GetMetric() {
			var names []string
			for _, lp := range mt.GetLabel() {
				names = append(names, lp.GetName())
			}
			sort.Strings(names)
			if strings.Join(names, ",") != want.labels {
				t.Errorf("%s has labels %v, want %q", name, names, want.labels)
			}
		}
	}
	// Both phase series exist for every phase before the first iteration.
	for _, name := range []string{"satrain_phase_duration_seconds", "satrain_phase_seconds_total"} {
		var phases []string
		for _, mt := range got[name].GetMetric() {
			phases = append(phases, mt.GetLabel()[0].GetValue())
		}
		sort.Strings(phases)
		want := append([]string(nil), AllPhases...)
		sort.Strings(want)
		if fmt.Sprint(phases) != fmt.Sprint(want) {
			t.Errorf("%s phases %v, want %v", name, phases, want)
		}
	}
	bi := got["satrain_build_info"].GetMetric()
	if len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
		t.Fatalf("satrain_build_info: %v", bi)
	}
	labels := map[string]string{}
	for _, lp := range bi[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["version"] != "v-test" || labels["torch_version"] != "1.13.0" || labels["cuda"] != "false" || !strings.HasPrefix(labels["goversion"], "go") {
		t.Errorf("satrain_build_info labels %v", labels)
	}
}

func TestMetricsServe(t *testing.T) {
	m := report.NewMetrics("v-test", "1.13.0", false)
	if addr, err := m.Serve(context.Background(), ""); addr != "" || err != nil {
		t.Errorf("Serve(\"\") = %q, %v; want no server", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("bound address %q", addr)
	}
	// The port is taken now: a second server on it fails at once.
	if _, err := report.NewMetrics("x", "y", false).Serve(ctx, addr); err == nil {
		t.Errorf("second Serve on %s succeeded", addr)
	}
	m.Iteration.Set(7)
	m.SequencesScored.Add(96)
	code, body := runtest.HTTPGet(t, "http://"+addr+"/metrics")
	if code != 200 || !regexp.MustCompile(`(?m)^satrain_iteration 7$`).MatchString(body) ||
		!regexp.MustCompile(`(?m)^satrain_sequences_scored_total 96$`).MatchString(body) ||
		!strings.Contains(body, `satrain_phase_seconds_total{phase="inference"} 0`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := runtest.HTTPGet(t, "http://"+addr+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	for _, p := range []string{"/", "/metricsx", "/debug/pprof/", "/api/v1/query"} {
		if code, _ := runtest.HTTPGet(t, "http://"+addr+p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	// Cancelling the context stops the server.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("metrics server still answers after its context ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricValue reads one sample "name value" (no labels) from a text exposition.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMetricsDuringRunAndPrometheus runs a selection-aware run with its
// metrics server on, checks the exported values against the run, and has a
// real Prometheus server scrape it (the server stays up after the run until
// the run's context ends).
func TestMetricsDuringRunAndPrometheus(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), &console)
	cfg.MetricsAddr = ltFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var during []string
	cfg.AfterIteration = func(it int) {
		_, body := runtest.HTTPGet(t, "http://"+cfg.MetricsAddr+"/metrics")
		during = append(during, body)
	}
	res, err := RunSelectionAware(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, console.String())
	}
	if len(during) != cfg.NumIterations {
		t.Fatalf("scraped %d times during the run", len(during))
	}
	for i, body := range during {
		rec := res.Iterations[i]
		checks := map[string]float64{
			"satrain_iteration":                 float64(rec.Iteration),
			"satrain_train_loss":                rec.TrainLoss,
			"satrain_expected_return_mean":      rec.ERMean,
			"satrain_expected_return_median":    rec.ERMedian,
			"satrain_topk_expected_return_mean": rec.TopKERMean,
			"satrain_topk_expected_return_min":  rec.TopKERMin,
			"satrain_sequences_scored_total":    float64(rec.ScoredTotal),
			"satrain_sequences_trained_total":   float64(rec.TrainedTotal),
			"satrain_inference_batch_size":      float64(cfg.InferenceBatch),
			"satrain_steps_skipped_total":       0,
		}
		if rec.Validated {
			checks["satrain_validation_loss"] = rec.ValLoss
		}
		for name, want := range checks {
			if got := metricValue(t, body, name); got != want {
				t.Errorf("after iteration %d: %s = %v, run says %v", rec.Iteration, name, got, want)
			}
		}
		if got := metricValue(t, body, "satrain_iteration_duration_seconds_count"); got != float64(rec.Iteration) {
			t.Errorf("after iteration %d: %v iteration durations observed", rec.Iteration, got)
		}
	}

	// A real Prometheus scrapes the (still running) metrics server.
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		prom = "/usr/bin/prometheus"
	}
	ltNeed(t, ltExists(prom), "prometheus is not installed (Debian package prometheus)")
	dir := t.TempDir()
	promAddr := ltFreeAddr(t)
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: satrain\n    static_configs:\n      - targets: ['%s']\n", cfg.MetricsAddr)
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	var plog bytes.Buffer
	cmd := exec.CommandContext(pctx, prom, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &plog, &plog
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	query := "http://" + promAddr + "/api/v1/query?query=satrain_iteration"
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		if time.Now().After(deadline) {
			t.Fatalf("prometheus returned no satrain_iteration sample within 30 s; last answer %q\nprometheus log:\n%s", last, plog.String())
		}
		time.Sleep(500 * time.Millisecond)
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(query)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
		var qr struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  []any
				}
			}
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &qr) != nil || qr.Status != "success" || len(qr.Data.Result) == 0 {
			continue
		}
		r := qr.Data.Result[0]
		if len(r.Value) != 2 || r.Value[1] != fmt.Sprint(cfg.NumIterations) || r.Metric["job"] != "satrain" || r.Metric["instance"] != cfg.MetricsAddr {
			t.Fatalf("prometheus sample %+v, want satrain_iteration %d from job satrain, instance %s", r, cfg.NumIterations, cfg.MetricsAddr)
		}
		break
	}
}
