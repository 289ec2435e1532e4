package compare

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/runtest"
)

// TestCompareServesMetrics runs a one-run comparison with a metrics server
// and reads its series: the run's identity, the compare counters and the
// process memory.
func TestCompareServesMetrics(t *testing.T) {
	runtest.Lock(t)
	data := runtest.Panel(t, 3)
	out := filepath.Join(t.TempDir(), "cmp")
	cfg := evCompareConfig(data, out, []string{ArmStandard}, 240)
	cfg.Seeds = 1
	cfg.Base.MetricsAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the server
	var events []Event
	cfg.OnEvent = func(e Event) { events = append(events, e) }
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	evCheckEvents(t, events, cfg, res)
	served, ok := events[1].(MetricsServed)
	if !ok || !strings.HasPrefix(served.Addr, "127.0.0.1:") || strings.HasSuffix(served.Addr, ":0") {
		t.Fatalf("second event %#v, want MetricsServed with the bound address", events[1])
	}
	url := "http://" + served.Addr + "/metrics"
	code, body := runtest.HTTPGet(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	seedDir := filepath.Join(out, ArmStandard, "seed7")
	for _, want := range []string{`satrain_compare_runs 1`, `satrain_compare_runs_completed_total 1`, `save_dir="` + seedDir + `"`,
		`kind="standard"`, `satrain_sequences_trained_total 240`, `process_resident_memory_bytes`, `satrain_iterations_target 3`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
