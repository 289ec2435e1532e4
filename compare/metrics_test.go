package compare

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCompareServesMetrics runs a one-run comparison with a metrics server
// and reads its series: the run's identity, the compare counters and the
// process memory.
func TestCompareServesMetrics(t *testing.T) {
	evLock(t)
	data := evData(t)
	out := filepath.Join(t.TempDir(), "cmp")
	cfg := evCompareConfig(data, out, []string{ArmStandard}, 240)
	cfg.Seeds = 1
	cfg.Base.MetricsAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the server
	if _, err := Run(ctx, cfg); err != nil {
		t.Fatalf("compare: %v\n%s", err, cfg.Console.(*bytes.Buffer))
	}
	console := cfg.Console.(*bytes.Buffer).String()
	m := regexp.MustCompile(`Metrics: (http://\S+/metrics)`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("console does not give the metrics URL:\n%s", console)
	}
	for _, want := range []string{"run 1/1: standard seed 7 training", "run 1/1: standard seed 7 evaluating"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
	}
	code, body := httpGet(t, m[1])
	if code != 200 {
		t.Fatalf("GET %s: %d", m[1], code)
	}
	seedDir := filepath.Join(out, ArmStandard, "seed7")
	for _, want := range []string{`satrain_compare_runs 1`, `satrain_compare_runs_completed_total 1`, `save_dir="` + seedDir + `"`,
		`kind="standard"`, `satrain_sequences_trained_total 240`, `process_resident_memory_bytes`, `satrain_iterations_target 3`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
