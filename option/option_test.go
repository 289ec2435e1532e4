package option

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestRenderings(t *testing.T) {
	inner := Errorf("{top-k} %d is larger than {sample-size} %d", 120, 100)
	outer := Errorf("{data} %s: %w", "panel.h5", io.ErrUnexpectedEOF)
	wrapped := fmt.Errorf("run: %w", Errorf("strategy: %w", inner))
	for _, c := range []struct {
		err       error
		bare, cli string
	}{
		{inner, "top-k 120 is larger than sample-size 100", "--top-k 120 is larger than --sample-size 100"},
		{outer, "data panel.h5: unexpected EOF", "--data panel.h5: unexpected EOF"},
		{wrapped, "run: strategy: top-k 120 is larger than sample-size 100", "run: strategy: --top-k 120 is larger than --sample-size 100"},
		{errors.Join(errors.New("first"), inner), "first\ntop-k 120 is larger than sample-size 100", "first\n--top-k 120 is larger than --sample-size 100"},
		{errors.New("no {settings} here"), "no {settings} here", "no {settings} here"},
	} {
		if got := c.err.Error(); got != c.bare {
			t.Errorf("Error() = %q, want %q", got, c.bare)
		}
		if got := CommandLine(c.err).Error(); got != c.cli {
			t.Errorf("CommandLine = %q, want %q", got, c.cli)
		}
	}
	if !errors.Is(CommandLine(outer), io.ErrUnexpectedEOF) {
		t.Error("CommandLine lost what the error wraps")
	}
	var oe *Error
	if !errors.As(CommandLine(wrapped), &oe) {
		t.Error("CommandLine hid the *Error")
	}
	if CommandLine(nil) != nil {
		t.Error("CommandLine(nil) != nil")
	}
}
