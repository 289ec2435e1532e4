// Package option is how satrain's library packages report a bad setting
// without speaking the command line's language.
//
// An *Error's text names each setting in braces, "{top-k}", by the name the
// command line gives its flag (without the dashes). Error renders the names
// bare ("top-k 120 is larger than sample-size 100"), for a program that
// calls the library; the command line renders them as its flags
// (CommandLine: "--top-k 120 is larger than --sample-size 100"). This is
// how torch's typed errors and database drivers' column errors work: the
// library names the thing, the caller phrases it.
package option

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Error is an error about one or more settings.
type Error struct {
	text string // with {name} markers
	err  error  // what the format's %w wrapped, if anything
}

// marker is a setting's name in braces.
var marker = regexp.MustCompile(`\{([a-z][a-z0-9-]*)\}`)

// Errorf formats like fmt.Errorf (%w wraps); the format names settings as
// {name}.
func Errorf(format string, a ...any) error {
	e := fmt.Errorf(format, a...)
	return &Error{text: e.Error(), err: errors.Unwrap(e)}
}

// Error is the message with each setting named bare.
func (e *Error) Error() string { return marker.ReplaceAllString(e.text, "$1") }

// Flagged is the message with each setting named as the flag --name.
func (e *Error) Flagged() string { return marker.ReplaceAllString(e.text, "--$1") }

// Unwrap returns the error the format wrapped with %w, if any.
func (e *Error) Unwrap() error { return e.err }

// CommandLine returns err with the message of every *Error in its tree
// phrased with flags (Flagged) where it appears in err's message; the
// result wraps err, so errors.Is and errors.As see what err holds. nil and
// errors without an *Error come back unchanged.
func CommandLine(err error) error {
	if err == nil {
		return nil
	}
	msg, changed := err.Error(), false
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if oe, ok := e.(*Error); ok && strings.Contains(msg, oe.Error()) {
			msg, changed = strings.Replace(msg, oe.Error(), oe.Flagged(), 1), true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	if !changed {
		return err
	}
	return &phrased{msg: msg, err: err}
}

type phrased struct {
	msg string
	err error
}

func (p *phrased) Error() string { return p.msg }
func (p *phrased) Unwrap() error { return p.err }
