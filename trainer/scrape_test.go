package trainer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// scrapeLoad is a pool of concurrent HTTP clients hitting /metrics (and every
// fourth request /healthz) of one run, each up to maxPer requests, one every
// interval (0: back to back), until stopped. Loopback only.
type scrapeLoad struct {
	ok, failed atomic.Int64
	errs       sync.Map // first error per client
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startScrapeLoad(addr string, clients, maxPer int, interval time.Duration) *scrapeLoad {
	l := &scrapeLoad{stop: make(chan struct{})}
	for c := 0; c < clients; c++ {
		l.wg.Add(1)
		go func(c int) {
			defer l.wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			// Wait for the server (it starts inside RunSelectionAware).
			for up := false; !up; {
				select {
				case <-l.stop:
					return
				default:
				}
				if r, err := hc.Get("http://" + addr + "/healthz"); err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
					up = r.StatusCode == 200
				}
				if !up {
					time.Sleep(5 * time.Millisecond)
				}
			}
			var tick <-chan time.Time
			if interval > 0 {
				tk := time.NewTicker(interval)
				defer tk.Stop()
				tick = tk.C
			}
			for i := 0; i < maxPer; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if tick != nil {
					select {
					case <-l.stop:
						return
					case <-tick:
					}
				}
				path, want := "/metrics", "satrain_iteration "
				if i%4 == 3 {
					path, want = "/healthz", "ok"
				}
				r, err := hc.Get("http://" + addr + path)
				if err != nil {
					l.failed.Add(1)
					l.errs.LoadOrStore(c, err.Error())
					continue
				}
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil || r.StatusCode != 200 || !strings.Contains(string(b), want) {
					l.failed.Add(1)
					l.errs.LoadOrStore(c, fmt.Sprintf("%s: status %d, err %v, %d bytes", path, r.StatusCode, err, len(b)))
					continue
				}
				l.ok.Add(1)
			}
		}(c)
	}
	return l
}

func (l *scrapeLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// TestMetricsUnderScrapeLoad: 16 concurrent clients scrape a training run's
// /metrics and /healthz (at most 400 requests each) from its first
// iteration to its end: every request succeeds, and the run's losses and
// selections are exactly those of the same run without scraping.
func TestMetricsUnderScrapeLoad(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var c1 bytes.Buffer
	cfg := ltConfig(data, t.TempDir(), &c1)
	cfg.NumIterations = 4
	quiet, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	var c2 bytes.Buffer
	cfg2 := ltConfig(data, t.TempDir(), &c2)
	cfg2.NumIterations = 4
	cfg2.MetricsAddr = ltFreeAddr(t)
	const clients, maxPer = 16, 400
	load := startScrapeLoad(cfg2.MetricsAddr, clients, maxPer, 0)
	cfg2.AfterIteration = func(it int) {
		if it == 1 {
			// Make sure the load is on before iterations 2-4 run.
			deadline := time.Now().Add(20 * time.Second)
			for load.ok.Load() < 2*clients && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	loaded, err := RunSelectionAware(ctx, cfg2)
	during := load.ok.Load() + load.failed.Load()
	elapsed := time.Since(start)
	load.finish()
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if f := load.failed.Load(); f != 0 {
		var first []string
		load.errs.Range(func(_, v any) bool { first = append(first, v.(string)); return len(first) < 3 })
		t.Errorf("%d of %d scrapes failed: %v", f, f+load.ok.Load(), first)
	}
	if during < 2*clients {
		t.Errorf("only %d requests were served during the run", during)
	}
	if len(quiet.Iterations) != len(loaded.Iterations) {
		t.Fatalf("%d iterations with scraping, %d without", len(loaded.Iterations), len(quiet.Iterations))
	}
	for i := range quiet.Iterations {
		a, b := quiet.Iterations[i], loaded.Iterations[i]
		same := math.Float64bits(a.TrainLoss) == math.Float64bits(b.TrainLoss) && fmt.Sprint(a.Selected) == fmt.Sprint(b.Selected) &&
			((!a.Validated) == (!b.Validated)) && (!a.Validated || math.Float64bits(a.ValLoss) == math.Float64bits(b.ValLoss))
		if !same {
			t.Errorf("iteration %d differs under scrape load: train loss %v vs %v", a.Iteration, a.TrainLoss, b.TrainLoss)
		}
	}
	t.Logf("scrape load: %d clients, %d requests during the run (%.1f s), %d in all, %d failed",
		clients, during, elapsed.Seconds(), load.ok.Load()+load.failed.Load(), load.failed.Load())
}

// BenchmarkTrainScrape measures a short selection-aware run (tiny model,
// CPU, 1 thread, 20 iterations) with no scraping, with 16 clients scraping
// every 100 ms or every 10 ms each (160 or 1,600 requests/s; Prometheus
// scrapes every 15 s), and with 16 clients scraping back to back
// (saturation). The clients run in the benchmark process and share its
// cores with training. The differences are the slowdown (recorded in
// docs/RELIABILITY.md).
//
//	go test -run '^$' -bench TrainScrape -benchtime 5x ./trainer
func BenchmarkTrainScrape(b *testing.B) {
	data := filepath.Join(b.TempDir(), "synth.h5")
	if err := loader.Synth(data, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 11}); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name     string
		clients  int
		interval time.Duration
	}{{"none", 0, 0}, {"16x10Hz", 16, 100 * time.Millisecond}, {"16x100Hz", 16, 10 * time.Millisecond}, {"16xsaturating", 16, 0}} {
		clients := v.clients
		b.Run(v.name, func(b *testing.B) {
			// libtorch keeps grad/inference mode per OS thread; each
			// sub-benchmark runs on its own goroutine.
			defer torch.LockThread()()
			var reqs int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var c bytes.Buffer
				cfg := ltConfig(data, b.TempDir(), &c)
				cfg.NumIterations, cfg.ValEvery, cfg.CheckpointEvery = 20, 5, 10
				var load *scrapeLoad
				if clients > 0 {
					ln := ltFreeAddrB(b)
					cfg.MetricsAddr = ln
					load = startScrapeLoad(ln, clients, 1<<30, v.interval)
				}
				ctx, cancel := context.WithCancel(context.Background())
				b.StartTimer()
				_, err := RunSelectionAware(ctx, cfg)
				b.StopTimer()
				if load != nil {
					load.finish()
					reqs += load.ok.Load()
					if load.failed.Load() > 0 {
						b.Errorf("%d scrapes failed", load.failed.Load())
					}
				}
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(reqs)/float64(b.N), "scrapes/op")
		})
	}
}

func ltFreeAddrB(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
