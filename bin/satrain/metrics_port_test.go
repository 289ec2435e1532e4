package main

import (
	"errors"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/satrain/satrain/report"
)

// TestBusyDefaultMetricsPort (issue 23, item 10): with the default metrics
// address busy (a second run on the machine), a run without --metrics-addr
// serves on the next free port and names its URL; the same address given on
// the command line stays a one-line error.
func TestBusyDefaultMetricsPort(t *testing.T) {
	ln, err := net.Listen("tcp", report.DefaultMetricsAddr)
	switch {
	case err == nil:
		defer ln.Close()
	case errors.Is(err, syscall.EADDRINUSE):
		// Something else holds it: busy either way.
	default:
		t.Skipf("cannot listen on %s: %v", report.DefaultMetricsAddr, err)
	}
	dir := t.TempDir()
	r := runCLI(t, nil, cliArgs(filepath.Join(dir, "a"), map[string]string{"metrics-addr": ""})...)
	if r.code != 0 {
		t.Fatalf("run without --metrics-addr, default port busy: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`127\.0\.0\.1:9108 is in use .*serving http://127\.0\.0\.1:(\d+)/metrics`).FindStringSubmatch(r.stderr)
	if m == nil || m[1] == "9108" {
		t.Errorf("stderr should name the busy default and the URL served instead:\n%s", r.stderr)
	} else if !strings.Contains(r.stdout, "http://127.0.0.1:"+m[1]+"/metrics") {
		t.Errorf("the console should show the URL served, http://127.0.0.1:%s/metrics:\n%s", m[1], r.stdout)
	}

	r = runCLI(t, nil, cliArgs(filepath.Join(dir, "b"), map[string]string{"metrics-addr": report.DefaultMetricsAddr})...)
	checkOneLineError(t, r, "--metrics-addr 127.0.0.1:9108: 127.0.0.1:9108 is in use")
}
