package loader

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ImportOptions configure ImportCSV. Zero values take the defaults noted.
type ImportOptions struct {
	Horizons     []int  // default DefaultHorizons
	Bins         int    // default 10
	TrainEnd     int32  // YYYYMMDD; default the date at 70% of the panel (also fits normalisation and bin edges)
	ValEnd       int32  // YYYYMMDD; default the date at 85%
	MinRows      int    // files with fewer usable rows are dropped; default 250
	Constituents string // Symbol,Name,Sector CSV; default DIR/constituents.csv when present
}

// FileIssue is one file ImportCSV dropped, and why.
type FileIssue struct {
	File   string
	Reason string // the full reason, e.g. "only 107 usable rows (minimum 250)"
	Kind   string // the reason's category, for counts: one of the fileIssue* constants
}

// Categories of FileIssue.Kind.
const (
	fileIssueUnreadable = "unreadable"
	fileIssueNoHeader   = "no CSV header"
	fileIssueNotPrices  = "not a price CSV"
	fileIssueNoRows     = "no data rows"
	fileIssueDuplicate  = "ticker already read from another file"
	fileIssueTooFew     = "too few usable rows"
)

// csvFileError is parseCSVFile's error: why a whole file is unusable.
type csvFileError struct{ kind, msg string }

func (e *csvFileError) Error() string { return e.msg }

func issueKind(err error) string {
	if e, ok := err.(*csvFileError); ok {
		return e.kind
	}
	return fileIssueUnreadable
}

// ImportReport says what ImportCSV read, kept, repaired and dropped.
type ImportReport struct {
	Dir, Out         string
	FilesRead        int
	FilesDropped     []FileIssue
	TickersKept      int
	RowsRead         int64            // data rows in kept and dropped files
	RowsKept         int64            // rows placed in the panel
	RowsDropped      map[string]int64 // reason -> rows
	Repaired         map[string]int64 // what was repaired -> rows or files
	ZeroVolumeRows   int64            // kept
	Dates            int
	FirstDate        int32
	LastDate         int32
	TrainEnd, ValEnd int32
	Features         []string
	ClippedValues    int64 // normalised feature values clipped to +-10
	Groups           int   // distinct groups (sectors); 0 when no constituents file
	NoGroup          []string
	// Adjustments are the days (and files) whose adjusted close failed a
	// check against the raw close, with what was done about each.
	Adjustments []AdjustmentIssue
	// Ended are the kept tickers whose last row is before the panel's last
	// day (delisted, merged, renamed or cut short by the vendor), ascending by
	// ticker. A folder of today's index constituents has none: see
	// docs/FORMAT.md on survivorship.
	Ended   []TickerEnd
	Elapsed time.Duration
}

// TickerEnd is a ticker whose history ends before the panel's last day.
type TickerEnd struct {
	Ticker   string
	LastDate int32 // YYYYMMDD, the ticker's last row on the panel's days
}

func (r *ImportReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "import %s -> %s (%.1fs)\n", r.Dir, r.Out, r.Elapsed.Seconds())
	fmt.Fprintf(&b, "  files read: %d, tickers kept: %d, files dropped: %d\n", r.FilesRead, r.TickersKept, len(r.FilesDropped))
	for _, f := range r.FilesDropped {
		fmt.Fprintf(&b, "    dropped %s: %s\n", f.File, f.Reason)
	}
	var dropped int64
	for _, n := range r.RowsDropped {
		dropped += n
	}
	fmt.Fprintf(&b, "  rows read: %s, kept: %s, dropped: %s\n", FormatCount(r.RowsRead), FormatCount(r.RowsKept), FormatCount(dropped))
	for _, k := range sortedKeys(r.RowsDropped) {
		fmt.Fprintf(&b, "    dropped %s rows: %s\n", FormatCount(r.RowsDropped[k]), k)
	}
	for _, k := range sortedKeys(r.Repaired) {
		fmt.Fprintf(&b, "    repaired %s: %s\n", FormatCount(r.Repaired[k]), k)
	}
	if r.ZeroVolumeRows > 0 {
		fmt.Fprintf(&b, "    kept %s rows with zero volume\n", FormatCount(r.ZeroVolumeRows))
	}
	fmt.Fprintf(&b, "  panel: %d tickers x %d days (%s..%s), %d features, train end %s, val end %s\n",
		r.TickersKept, r.Dates, FormatDate(r.FirstDate), FormatDate(r.LastDate), len(r.Features), FormatDate(r.TrainEnd), FormatDate(r.ValEnd))
	if r.ClippedValues > 0 {
		fmt.Fprintf(&b, "  clipped %s normalised feature values to +-10\n", FormatCount(r.ClippedValues))
	}
	if len(r.Adjustments) > 0 {
		fmt.Fprintf(&b, "  adjusted close checked against close: %d findings\n", len(r.Adjustments))
		for _, a := range r.Adjustments {
			when := "whole file"
			if a.Date != 0 {
				when = FormatDate(a.Date)
			}
			fmt.Fprintf(&b, "    %s %s: %s: %s; %s\n", a.Ticker, when, a.Kind, a.What, a.Action)
		}
	}
	if r.LastDate != 0 {
		// Said whatever ended early: a folder of today's constituents loses its dead companies before the files
		// are written, so one late delisting (an acquisition days before the end) proves nothing.
		fmt.Fprintf(&b, "  survivorship: a folder of today's index constituents leaves out every company that failed or left the index before the files were written; results on it are biased upward (docs/FORMAT.md)\n")
		if len(r.Ended) == 0 {
			fmt.Fprintf(&b, "  every ticker trades on the panel's last day (%s)\n", FormatDate(r.LastDate))
		} else {
			fmt.Fprintf(&b, "  tickers that end before the panel's last day (%s): %d; last day each:\n", FormatDate(r.LastDate), len(r.Ended))
			for k := 0; k < len(r.Ended); k += 6 {
				var parts []string
				for _, e := range r.Ended[k:min(k+6, len(r.Ended))] {
					parts = append(parts, e.Ticker+" "+FormatDate(e.LastDate))
				}
				fmt.Fprintf(&b, "    %s\n", strings.Join(parts, ", "))
			}
		}
	}
	if r.Groups > 0 {
		fmt.Fprintf(&b, "  groups: %d sectors", r.Groups)
		if len(r.NoGroup) > 0 {
			fmt.Fprintf(&b, "; %d tickers without one (group \"Unknown\"): %s", len(r.NoGroup), strings.Join(r.NoGroup, " "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func sortedKeys(m map[string]int64) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// priceSeries is one ticker's cleaned daily bars as the vendor gave them,
// ascending: raw open, high, low, close and volume (shares), and the
// adjusted close (the close where the file has none, hasAdj false).
// widened marks the rows whose high/low were widened to contain open/close.
type priceSeries struct {
	dates              []int32
	o, h, l, c, adj, v []float64
	widened            []bool
	hasAdj             bool
}

// tickerData is one file ImportCSV keeps: ticker name, file name, rows.
type tickerData struct {
	name, file string
	s          *priceSeries
}

func (s *priceSeries) len() int { return len(s.dates) }

func (s *priceSeries) appendRow(from *priceSeries, i int) {
	s.dates = append(s.dates, from.dates[i])
	s.o = append(s.o, from.o[i])
	s.h = append(s.h, from.h[i])
	s.l = append(s.l, from.l[i])
	s.c = append(s.c, from.c[i])
	s.adj = append(s.adj, from.adj[i])
	s.v = append(s.v, from.v[i])
	s.widened = append(s.widened, from.widened[i])
}

// onAxis returns the rows of s whose date is a key of day: the only rows the
// panel uses. Rows off the axis (weekend or holiday rows of single files) are
// left out before any feature window is computed, so they contribute to
// nothing.
func (s *priceSeries) onAxis(day map[int32]int) *priceSeries {
	out := &priceSeries{hasAdj: s.hasAdj}
	for i, d := range s.dates {
		if _, ok := day[d]; ok {
			out.appendRow(s, i)
		}
	}
	return out
}

// csvStats counts what parsing one file did. Row repairs (high/low widened)
// and zero-volume rows are counted by ImportCSV on the rows it keeps.
type csvStats struct {
	rows     int64
	dropped  map[string]int64
	repaired map[string]int64
}

var (
	reDAName = regexp.MustCompile(`^DA-(.+)-T-\d{4}-\d{2}-\d{2}$`)
)

// tickerFromFile maps "DA-AAPL-T-2021-04-21.csv" and "AAPL.csv" to "AAPL".
func tickerFromFile(name string) string {
	base := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	if m := reDAName.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	return base
}

// column roles
const (
	colDate = iota
	colOpen
	colHigh
	colLow
	colClose
	colAdj
	colVolume
	nCols
)

// parseCSVFile parses one per-ticker daily OHLCV CSV (Yahoo layout
// Date,Open,High,Low,Close,Adj Close,Volume or the
// timestamp,open,high,low,close,adjusted_close,volume,... layout). Rows that
// cannot be used are dropped and counted; high/low are widened to contain
// open/close; duplicate dates keep the first row; unsorted files are sorted.
// Prices and volume stay as the vendor gave them (adjustSeries adjusts them,
// after checking the adjusted close). An error means the whole file is
// unusable.
func parseCSVFile(data []byte) (*priceSeries, *csvStats, error) {
	st := &csvStats{dropped: map[string]int64{}, repaired: map[string]int64{}}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	r.TrimLeadingSpace = true
	r.LazyQuotes = true
	head, err := r.Read()
	if err != nil {
		return nil, st, &csvFileError{fileIssueNoHeader, fmt.Sprintf("no CSV header (%v)", err)}
	}
	var idx [nCols]int
	for k := range idx {
		idx[k] = -1
	}
	for k, name := range head {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "date", "timestamp":
			idx[colDate] = k
		case "open":
			idx[colOpen] = k
		case "high":
			idx[colHigh] = k
		case "low":
			idx[colLow] = k
		case "close":
			idx[colClose] = k
		case "adj close", "adjusted_close", "adj_close", "adjclose", "adjusted close":
			idx[colAdj] = k
		case "volume":
			idx[colVolume] = k
		}
	}
	for k, want := range []string{"date", "open", "high", "low", "close", "", "volume"} {
		if want != "" && idx[k] < 0 {
			first := strings.Join(head, ",")
			if len(first) > 40 {
				first = first[:40] + "..."
			}
			return nil, st, &csvFileError{fileIssueNotPrices, fmt.Sprintf("not a price CSV: header lacks a %s column (first line %q)", want, first)}
		}
	}
	type row struct {
		date               int32
		o, h, l, c, adj, v float64
		widened            bool
	}
	var rows []row
	sorted := true
	for {
		rec, err := r.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if pe, ok := err.(*csv.ParseError); ok && pe.Err != nil {
				// a malformed line: count it and go on
				st.rows++
				st.dropped["malformed CSV line"]++
				continue
			}
			break
		}
		st.rows++
		if len(rec) < len(head) {
			st.dropped["missing fields"]++
			continue
		}
		date, ok := parseDate(rec[idx[colDate]])
		if !ok {
			st.dropped["bad date"]++
			continue
		}
		var vals [nCols]float64
		bad := false
		for k := colOpen; k < nCols; k++ {
			if idx[k] < 0 {
				continue
			}
			x, err := strconv.ParseFloat(strings.TrimSpace(rec[idx[k]]), 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				bad = true
				break
			}
			vals[k] = x
		}
		if bad {
			st.dropped["unparseable or missing number"]++
			continue
		}
		o, h, l, c, v := vals[colOpen], vals[colHigh], vals[colLow], vals[colClose], vals[colVolume]
		if o <= 0 || h <= 0 || l <= 0 || c <= 0 || (idx[colAdj] >= 0 && vals[colAdj] <= 0) {
			st.dropped["zero or negative price"]++
			continue
		}
		if v < 0 {
			st.dropped["negative volume"]++
			continue
		}
		widened := false
		if hi := math.Max(o, c); h < hi || l > math.Min(o, c) || l > h {
			widened = true
			h = math.Max(h, math.Max(hi, l))
			l = math.Min(l, math.Min(o, c))
		}
		adj := c
		if idx[colAdj] >= 0 {
			adj = vals[colAdj]
		}
		// A repeated date is a duplicate, not disorder: only a date before
		// its predecessor makes the file unsorted.
		if len(rows) > 0 && date < rows[len(rows)-1].date {
			sorted = false
		}
		rows = append(rows, row{date, o, h, l, c, adj, v, widened})
	}
	if !sorted {
		st.repaired["files with unsorted dates (sorted)"]++
		sort.SliceStable(rows, func(a, b int) bool { return rows[a].date < rows[b].date })
	}
	s := &priceSeries{hasAdj: idx[colAdj] >= 0}
	for k, rw := range rows {
		if k > 0 && rw.date == rows[k-1].date {
			st.dropped["duplicate date (first row kept)"]++
			continue
		}
		s.dates = append(s.dates, rw.date)
		s.o = append(s.o, rw.o)
		s.h = append(s.h, rw.h)
		s.l = append(s.l, rw.l)
		s.c = append(s.c, rw.c)
		s.adj = append(s.adj, rw.adj)
		s.v = append(s.v, rw.v)
		s.widened = append(s.widened, rw.widened)
	}
	if st.rows == 0 {
		return nil, st, &csvFileError{fileIssueNoRows, "no data rows"}
	}
	return s, st, nil
}

// parseDate accepts 2006-01-02 (optionally followed by a time), 2006/01/02
// and 20060102.
func parseDate(s string) (int32, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 10 && (s[10] == ' ' || s[10] == 'T') {
		s = s[:10]
	}
	var y, m, d int
	var err error
	switch {
	case len(s) == 10 && (s[4] == '-' || s[4] == '/') && s[7] == s[4]:
		if y, err = strconv.Atoi(s[:4]); err != nil {
			return 0, false
		}
		if m, err = strconv.Atoi(s[5:7]); err != nil {
			return 0, false
		}
		if d, err = strconv.Atoi(s[8:10]); err != nil {
			return 0, false
		}
	case len(s) == 8:
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, false
		}
		y, m, d = n/10000, n/100%100, n%100
	default:
		return 0, false
	}
	if y < 1800 || y > 2200 || m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d {
		return 0, false // e.g. 2021-02-30
	}
	return int32(y*10000 + m*100 + d), true
}

// ImportFeatureNames are the features ImportCSV computes, in order.
var ImportFeatureNames = []string{
	"ret1", "ret5", "ret20", "ret60", // log close-to-close returns
	"open_rel", "high_rel", "low_rel", // log(open/close), log(high/close), log(low/close)
	"gap",                // log(open / previous close)
	"vol20",              // std of ret1 over 20 rows
	"ma20_rel",           // log(close / 20-row mean close)
	"logdollarvol",       // log(1 + raw close x raw volume), currency units
	"logdollarvol_rel20", // logdollarvol minus its 20-row mean
}

// rawFeatures computes the unnormalised features of a ticker's bars, NaN for
// the warm-up rows (the first segmentWarmup of each unbroken part). Every
// feature of row i reads rows i-60 .. i only, and prices only as ratios of
// two adjusted prices (a later event scales both alike, so the ratio is what
// was known at the close of row i) or as raw dollar volume (known that day).
func rawFeatures(s *barSeries) [][]float64 {
	n := len(s.c)
	F := len(ImportFeatureNames)
	out := make([][]float64, n)
	lr := func(a, b float64) float64 { return math.Log(a / b) }
	ldv := make([]float64, n)
	r1 := make([]float64, n)
	for i := 0; i < n; i++ {
		ldv[i] = math.Log1p(s.dollarVol[i])
		if i > 0 {
			r1[i] = lr(s.c[i], s.c[i-1])
		}
	}
	for i := 0; i < n; i++ {
		row := make([]float64, F)
		out[i] = row
		if i-s.segStart[i] < segmentWarmup {
			for k := range row {
				row[k] = math.NaN()
			}
			continue
		}
		c := s.c[i]
		row[0] = r1[i]
		row[1] = lr(c, s.c[i-5])
		row[2] = lr(c, s.c[i-20])
		row[3] = lr(c, s.c[i-60])
		row[4] = lr(s.o[i], c)
		row[5] = lr(s.h[i], c)
		row[6] = lr(s.l[i], c)
		row[7] = lr(s.o[i], s.c[i-1])
		var m, m2, mc, mv float64
		for k := i - 19; k <= i; k++ {
			m += r1[k]
			m2 += r1[k] * r1[k]
			mc += s.c[k]
			mv += ldv[k]
		}
		m /= 20
		row[8] = math.Sqrt(math.Max(0, m2/20-m*m))
		row[9] = lr(c, mc/20)
		row[10] = ldv[i]
		row[11] = ldv[i] - mv/20
	}
	return out
}

// ImportCSV imports every per-ticker CSV of dir into a panel file at out (see
// parseCSVFile for what is repaired and dropped) and reports what it did.
func ImportCSV(dir, out string, opt ImportOptions) (*ImportReport, error) {
	start := time.Now()
	fail := func(format string, args ...interface{}) (*ImportReport, error) {
		return nil, fmt.Errorf("loader: import %s: "+format, append([]interface{}{dir}, args...)...)
	}
	if len(opt.Horizons) == 0 {
		opt.Horizons = append([]int(nil), DefaultHorizons...)
	}
	for k, h := range opt.Horizons {
		if h < 1 || (k > 0 && h <= opt.Horizons[k-1]) {
			return fail("horizons %v: want positive and increasing", opt.Horizons)
		}
	}
	if opt.Bins == 0 {
		opt.Bins = 10
	}
	if opt.Bins < 2 {
		return fail("bins %d: want at least 2", opt.Bins)
	}
	if opt.MinRows == 0 {
		opt.MinRows = 250
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fail("%v", err)
	}
	rep := &ImportReport{Dir: dir, Out: out, RowsDropped: map[string]int64{}, Repaired: map[string]int64{},
		Features: append([]string(nil), ImportFeatureNames...)}
	var kept []tickerData
	seen := map[string]string{}
	drop := func(file, kind, reason string) {
		rep.FilesDropped = append(rep.FilesDropped, FileIssue{File: file, Reason: reason, Kind: kind})
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.EqualFold(filepath.Ext(name), ".csv") || strings.EqualFold(name, "constituents.csv") {
			continue
		}
		rep.FilesRead++
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			drop(name, fileIssueUnreadable, err.Error())
			continue
		}
		s, st, err := parseCSVFile(data)
		rep.RowsRead += st.rows
		if err != nil {
			drop(name, issueKind(err), err.Error())
			continue
		}
		for k, n := range st.dropped {
			rep.RowsDropped[k] += n
		}
		for k, n := range st.repaired {
			rep.Repaired[k] += n
		}
		tk := tickerFromFile(name)
		if prev, dup := seen[tk]; dup {
			drop(name, fileIssueDuplicate, fmt.Sprintf("ticker %s already read from %s", tk, prev))
			rep.RowsDropped["file dropped"] += int64(s.len())
			continue
		}
		if s.len() < opt.MinRows {
			drop(name, fileIssueTooFew, fmt.Sprintf("only %d usable rows (minimum %d)", s.len(), opt.MinRows))
			rep.RowsDropped["file dropped"] += int64(s.len())
			continue
		}
		seen[tk] = name
		kept = append(kept, tickerData{tk, name, s})
	}
	if len(kept) == 0 {
		return fail("%s", noUsableFiles(rep))
	}
	sort.Slice(kept, func(a, b int) bool { return kept[a].name < kept[b].name })

	// The day axis, and each ticker's rows on it. A file whose rows on the
	// axis are fewer than MinRows is dropped and the axis recomputed without
	// it (tickers only leave, so this ends).
	var (
		dates    []int32
		dayIndex map[int32]int
		onAxis   []*priceSeries
	)
	for {
		dates = dayAxis(kept)
		dayIndex = make(map[int32]int, len(dates))
		for i, d := range dates {
			dayIndex[d] = i
		}
		onAxis = onAxis[:0]
		next := kept[:0:0]
		for _, k := range kept {
			s := k.s.onAxis(dayIndex)
			if s.len() < opt.MinRows {
				drop(k.file, fileIssueTooFew, fmt.Sprintf("only %d usable rows on the panel's trading days (minimum %d)", s.len(), opt.MinRows))
				rep.RowsDropped["file dropped"] += int64(k.s.len())
				continue
			}
			next = append(next, k)
			onAxis = append(onAxis, s)
		}
		if len(next) == len(kept) {
			break
		}
		kept = next
		if len(kept) == 0 {
			return fail("%s", noUsableFiles(rep))
		}
	}
	T, D, F, H := len(kept), len(dates), len(ImportFeatureNames), len(opt.Horizons)
	maxH := opt.Horizons[H-1]
	if D < 60+maxH+2 {
		return fail("only %d trading days in the panel", D)
	}
	v := int(float64(D) * 0.70)
	w := int(float64(D) * 0.85)
	if opt.TrainEnd != 0 {
		v = sort.Search(D, func(i int) bool { return dates[i] >= opt.TrainEnd })
	}
	if opt.ValEnd != 0 {
		w = sort.Search(D, func(i int) bool { return dates[i] >= opt.ValEnd })
	}
	if v <= 60 || v >= D || w <= v || w >= D {
		return fail("train end %d / val end %d: want dates inside %d..%d, train end first", opt.TrainEnd, opt.ValEnd, dates[0], dates[D-1])
	}
	rep.TrainEnd, rep.ValEnd = dates[v], dates[w]

	nan := math.NaN()
	feats := make([]float64, T*D*F)
	for i := range feats {
		feats[i] = nan
	}
	closes := make([]float64, T*D) // adjusted close of (ticker, day), NaN when absent
	for i := range closes {
		closes[i] = nan
	}
	// segment of (ticker, day): the ticker's row where the unbroken part of
	// its history holding the day starts; a return spans one part only.
	segment := make([]int, T*D)
	for t, k := range kept {
		// Features are computed from the rows on the axis only: a row the
		// axis leaves out feeds no window (ret5 ... logdollarvol_rel20) of any
		// day, nor the adjustment checks.
		s := onAxis[t]
		rep.RowsDropped["on dates most listed tickers lack (e.g. holidays)"] += int64(k.s.len() - s.len())
		bars, issues := adjustSeries(k.name, k.file, s)
		rep.Adjustments = append(rep.Adjustments, issues...)
		if last := s.dates[s.len()-1]; last < dates[D-1] {
			rep.Ended = append(rep.Ended, TickerEnd{Ticker: k.name, LastDate: last})
		}
		raw := rawFeatures(bars)
		for i, d := range s.dates {
			day := dayIndex[d]
			rep.RowsKept++
			if s.v[i] == 0 {
				rep.ZeroVolumeRows++
			}
			if s.widened[i] {
				rep.Repaired["rows with high/low widened to contain open/close"]++
			}
			closes[t*D+day] = bars.c[i]
			segment[t*D+day] = bars.segStart[i]
			copy(feats[(t*D+day)*F:(t*D+day+1)*F], raw[i])
		}
	}
	if n := rep.RowsDropped["on dates most listed tickers lack (e.g. holidays)"]; n == 0 {
		delete(rep.RowsDropped, "on dates most listed tickers lack (e.g. holidays)")
	}
	// Normalise with training-period statistics only.
	mean := make([]float64, F)
	std := make([]float64, F)
	for f := 0; f < F; f++ {
		var n, s, s2 float64
		for t := 0; t < T; t++ {
			for d := 0; d < v; d++ {
				x := feats[(t*D+d)*F+f]
				if !math.IsNaN(x) && !math.IsInf(x, 0) {
					n++
					s += x
					s2 += x * x
				}
			}
		}
		if n < 2 {
			return fail("no training-period rows to normalise feature %s", ImportFeatureNames[f])
		}
		mean[f] = s / n
		std[f] = math.Sqrt(math.Max(s2/n-mean[f]*mean[f], 0))
		if std[f] < 1e-12 {
			std[f] = 1
		}
	}
	p := &Panel{Dates: dates, FeatureNames: rep.Features, Horizons: append([]int(nil), opt.Horizons...),
		Features: make([]float32, T*D*F), Returns: make([]float32, T*D*H), TrainEnd: rep.TrainEnd, ValEnd: rep.ValEnd}
	nan32 := float32(nan)
	for i := 0; i < T*D; i++ {
		row := feats[i*F : (i+1)*F]
		dst := p.Features[i*F : (i+1)*F]
		ok := true
		for f, x := range row {
			z := (x - mean[f]) / std[f]
			if math.IsNaN(z) || math.IsInf(z, 0) {
				ok = false
				break
			}
			if z > 10 {
				z = 10
				rep.ClippedValues++
			} else if z < -10 {
				z = -10
				rep.ClippedValues++
			}
			dst[f] = float32(z)
		}
		if !ok {
			for f := range dst {
				dst[f] = nan32
			}
		}
	}
	for t := 0; t < T; t++ {
		for d := 0; d < D; d++ {
			for h, hz := range opt.Horizons {
				r := nan32
				if d+hz < D {
					a, b := closes[t*D+d], closes[t*D+d+hz]
					if !math.IsNaN(a) && !math.IsNaN(b) && segment[t*D+d] == segment[t*D+d+hz] {
						r = float32(b / a)
					}
				}
				p.Returns[(t*D+d)*H+h] = r
			}
		}
	}
	sample := make([]float32, 0, T*v)
	for h, hz := range opt.Horizons {
		sample = sample[:0]
		for t := 0; t < T; t++ {
			for d := 0; d+hz < v; d++ {
				sample = append(sample, p.Returns[(t*D+d)*H+h])
			}
		}
		e, err := QuantileEdges(sample, opt.Bins)
		if err != nil {
			return fail("bin edges of horizon %d: %v", hz, err)
		}
		p.BinEdges = append(p.BinEdges, e)
	}
	for _, k := range kept {
		p.Tickers = append(p.Tickers, k.name)
	}
	cpath := opt.Constituents
	if cpath == "" {
		if _, err := os.Stat(filepath.Join(dir, "constituents.csv")); err == nil {
			cpath = filepath.Join(dir, "constituents.csv")
		}
	}
	if cpath != "" {
		sectors, err := readConstituents(cpath)
		if err != nil {
			return fail("%v", err)
		}
		distinct := map[string]bool{}
		for _, k := range kept {
			g, ok := sectors[k.name]
			if !ok {
				g, ok = sectors[strings.ReplaceAll(k.name, "-", ".")]
			}
			if !ok {
				g = "Unknown"
				rep.NoGroup = append(rep.NoGroup, k.name)
			}
			distinct[g] = true
			p.Groups = append(p.Groups, g)
		}
		rep.Groups = len(distinct)
	}
	rep.TickersKept, rep.Dates, rep.FirstDate, rep.LastDate = T, D, dates[0], dates[D-1]
	if err := WritePanel(out, p); err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// dayAxis returns the panel's trading days: the dates that at least half of
// the tickers listed at the time (first row <= date <= last row) trade on.
// This drops stray rows on holidays or weekends in single files. After the
// last date that two tickers share (the end of the download), every ticker
// that reached that date counts as still listed: a row one file has beyond
// it (a weekend row after the last trading day) is then a stray too, not a
// day of its own.
func dayAxis(kept []tickerData) []int32 {
	count := map[int32]int{}
	for _, k := range kept {
		for _, d := range k.s.dates {
			count[d]++
		}
	}
	all := make([]int32, 0, len(count))
	var shared int32 // last date traded by two tickers or more; 0 if none
	for d, n := range count {
		all = append(all, d)
		if n >= 2 && d > shared {
			shared = d
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	var dates []int32
	for _, d := range all {
		listed := 0
		for _, k := range kept {
			first, last := k.s.dates[0], k.s.dates[k.s.len()-1]
			if shared != 0 && last >= shared {
				last = math.MaxInt32
			}
			if first <= d && d <= last {
				listed++
			}
		}
		if 2*count[d] >= listed {
			dates = append(dates, d)
		}
	}
	return dates
}

// noUsableFiles says why no file of an import was kept: the files read and
// the reasons they were dropped, counted, with the first file of each reason.
func noUsableFiles(rep *ImportReport) string {
	if rep.FilesRead == 0 {
		return "no CSV files (*.csv other than constituents.csv) in the folder"
	}
	n := map[string]int{}
	first := map[string]FileIssue{}
	var kinds []string
	for _, f := range rep.FilesDropped {
		if n[f.Kind] == 0 {
			kinds = append(kinds, f.Kind)
			first[f.Kind] = f
		}
		n[f.Kind]++
	}
	sort.SliceStable(kinds, func(a, b int) bool { return n[kinds[a]] > n[kinds[b]] })
	var parts, examples []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		examples = append(examples, first[k].File+": "+first[k].Reason)
	}
	return fmt.Sprintf("no usable CSV files (%d read, %d dropped: %s; e.g. %s)", rep.FilesRead, len(rep.FilesDropped),
		strings.Join(parts, ", "), strings.Join(examples, "; "))
}

// readConstituents reads Symbol,Name,Sector rows into symbol -> sector.
func readConstituents(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	si, gi := -1, -1
	for k, h := range recs[0] {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "symbol", "ticker":
			si = k
		case "sector", "gics sector":
			gi = k
		}
	}
	if si < 0 || gi < 0 {
		return nil, fmt.Errorf("%s: want Symbol and Sector columns, got %v", path, recs[0])
	}
	out := map[string]string{}
	for _, rec := range recs[1:] {
		if len(rec) > si && len(rec) > gi && strings.TrimSpace(rec[si]) != "" {
			out[strings.TrimSpace(rec[si])] = strings.TrimSpace(rec[gi])
		}
	}
	return out, nil
}
