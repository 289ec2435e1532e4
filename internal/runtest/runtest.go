// Package runtest holds the helpers the tests of the packages that run the
// model (trainer, eval, compare) share: a small synthetic panel, pinning the
// test to its OS thread, and an HTTP GET of a metrics endpoint.
package runtest

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// Panel writes a small synthetic panel (20 tickers x 400 days x 4 features,
// 10 bins, from seed) into a fresh temporary folder and returns its path.
func Panel(t *testing.T, seed int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synth.h5")
	if err := loader.Synth(path, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: seed}); err != nil {
		t.Fatalf("synthetic data: %v", err)
	}
	return path
}

// Lock pins the test goroutine to its OS thread until the test ends
// (libtorch's inference mode and autocast are per thread).
func Lock(t *testing.T) {
	t.Helper()
	unlock := torch.LockThread()
	t.Cleanup(unlock)
}

// HTTPGet returns the status and body of a GET of url (5 s timeout).
func HTTPGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
