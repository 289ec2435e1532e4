package loader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/satrain/satrain/internal/yyyymmdd"
)

// FormatDate writes a YYYYMMDD date as YYYY-MM-DD, the form every output of
// satrain uses (docs/METRICS.md).
func FormatDate(d int32) string { return yyyymmdd.Format(d) }

// Inspect opens path with opt (stream mode unless opt.Mode says otherwise, so
// large files are fine) and writes its schema, sizes, date range, split
// boundaries, sequence counts per split and the label balance per bin.
//
// When opt.SeqLen is longer than any series of the file, or leaves a split
// empty, Inspect still writes the schema (everything up to the splits), then a
// line saying so, and returns Open's *SeqLenError or *EmptySplitError.
func Inspect(path string, opt Options, w io.Writer) error {
	if opt.Mode == "" || opt.Mode == "auto" {
		opt.Mode = "stream"
	}
	d, err := Open(path, opt)
	var sle *SeqLenError
	var ese *EmptySplitError
	if seqLen, empty := errors.As(err, &sle), errors.As(err, &ese); seqLen || empty {
		// Describe the file with the shortest window, then say why there are no split counts.
		short := opt
		short.SeqLen = 1
		d1, err1 := Open(path, short)
		if err1 != nil {
			return err
		}
		defer d1.Close()
		writeSchema(d1, path, w)
		if seqLen {
			fmt.Fprintf(w, "seq-len:   %d: no sequence fits (%s); split counts need a shorter --seq-len\n", opt.SeqLen, sle.why)
		} else {
			fmt.Fprintf(w, "seq-len:   %d: %v; split counts need a shorter --seq-len or other split dates\n", opt.SeqLen, ese)
		}
		return err
	}
	if err != nil {
		return err
	}
	defer d.Close()
	writeSchema(d, path, w)
	writeSplits(d, w)
	return nil
}

// writeSchema writes Inspect's lines on the file: sizes, names, dates,
// missing rows, groups and bin edges.
func writeSchema(d *Dataset, path string, w io.Writer) {
	var size int64
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	p := func(format string, args ...interface{}) { fmt.Fprintf(w, format, args...) }
	p("file:      %s (%s bytes, format version %d)\n", path, FormatCount(size), FormatVersion)
	p("identity:  %s\n", d.identity)
	p("features:  [%d tickers, %d days, %d features] float32 (%s MiB)\n", d.T, d.D, d.F, FormatCount(int64(d.T)*int64(d.D)*int64(d.F)*4>>20))
	p("           %s\n", strings.Join(d.names, " "))
	p("returns:   [%d, %d, %d] float32, horizons %v days\n", d.T, d.D, d.H, d.horizons)
	p("dates:     %s .. %s\n", FormatDate(d.dates[0]), FormatDate(d.dates[d.D-1]))
	p("missing:   %s of %s feature rows (%.2f%%), %s Inf values (treated as missing)\n",
		FormatCount(d.rowsMiss), FormatCount(int64(d.T*d.D)), 100*float64(d.rowsMiss)/float64(d.T*d.D), FormatCount(d.infValues))
	if d.groups != nil {
		cnt := map[string]int{}
		for _, g := range d.groups {
			cnt[g]++
		}
		var keys []string
		for k := range cnt {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p("groups:    %d:", len(keys))
		for _, k := range keys {
			p(" %s (%d)", k, cnt[k])
		}
		p("\n")
	} else {
		p("groups:    none\n")
	}
	p("bins:      %d per horizon\n", d.B)
	for h, e := range d.edges {
		p("  h=%-3d edges", d.horizons[h])
		for _, x := range e {
			p(" %.4f", x)
		}
		p("\n")
	}
}

// writeSplits writes Inspect's lines on the splits for d's window length:
// end days, sequence counts, label balance and the validation set.
func writeSplits(d *Dataset, w io.Writer) {
	p := func(format string, args ...interface{}) { fmt.Fprintf(w, format, args...) }
	p("seq-len:   %d, embargo %d days\n", d.opt.SeqLen, d.embargo)
	for _, name := range []string{"train", "val", "test"} {
		s := d.splits[name]
		// The days a sequence of this split can end on: the split's bounds
		// less the first SeqLen-1 days of each ticker's history and the
		// days without a full window or label.
		lo, hi := -1, -1
		for _, r := range s.runs {
			if lo < 0 || int(r.day) < lo {
				lo = int(r.day)
			}
			if last := int(r.day + r.n - 1); last > hi {
				hi = last
			}
		}
		if lo < 0 {
			p("%-6s end days none: 0 sequences\n", name)
			continue
		}
		p("%-6s end days %s..%s: %s sequences\n", name, FormatDate(d.dates[lo]), FormatDate(d.dates[hi]), FormatCount(s.n))
		counts := make([][]int64, d.H)
		for h := range counts {
			counts[h] = make([]int64, d.B)
		}
		for _, r := range s.runs {
			for day := int(r.day); day < int(r.day+r.n); day++ {
				i := int(r.ticker)*d.D + day
				for h := 0; h < d.H; h++ {
					counts[h][binIndex(d.edges[h], d.returns[i*d.H+h])]++
				}
			}
		}
		for h := range counts {
			p("  h=%-3d label %%", d.horizons[h])
			for _, c := range counts[h] {
				p(" %5.1f", 100*float64(c)/float64(s.n))
			}
			p("\n")
		}
	}
	p("validation set: %s sequences (a run draws them from val with its --seed)\n", FormatCount(int64(len(d.valSet))))
}
