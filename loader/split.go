package loader

import (
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strconv"
)

// SeqID names one sequence: the window of SeqLen days of ticker Ticker whose
// last day is Day (an index into Dates()).
type SeqID struct {
	Ticker int32
	Day    int32
}

// Split is the set of valid sequences of one period, held as runs of
// consecutive end days per ticker, so its memory does not grow with Len.
type Split struct {
	name       string
	first, end int // end-day range [first, end) of the split
	runs       []seqRun
	cum        []int64 // cum[k] = sequences in runs[:k]
	n          int64
}

type seqRun struct {
	ticker int32
	day    int32 // first end day
	n      int32
}

// SeqLenError is Open's error for a window length no series of the file can
// hold: SeqLen (days) is longer than Max, the file's number of days or its
// longest run of complete feature rows. errors.As finds it in Open's error.
type SeqLenError struct {
	SeqLen, Max int
	why         string // e.g. "120 days in the file"
}

func (e *SeqLenError) Error() string {
	return fmt.Sprintf("--seq-len %d longer than any series (%s)", e.SeqLen, e.why)
}

// EmptySplitError is Open's error for a split (train, val or test) left
// without a sequence by the window length, the split dates and the embargo.
// errors.As finds it in Open's error.
type EmptySplitError struct {
	Split string
	why   string
}

func (e *EmptySplitError) Error() string { return fmt.Sprintf("split %s is empty: %s", e.Split, e.why) }

// SplitBeforeFitError is Open's error for split dates that put days the
// panel's normalisation and bin edges were fitted on (the days before its
// train_end attribute, FitEnd) into the validation or test period: those
// periods would be scored with statistics of their own days, a look-ahead.
// Option is "train end" or "val end" (the latest one at fault); Date is the
// first day of the period it starts. errors.As finds it in Open's error.
type SplitBeforeFitError struct {
	Option       string
	Given, Date  int32
	FitEnd       int32
	TrainAlsoBad bool // with Option "val end": the train end is before FitEnd too
}

func (e *SplitBeforeFitError) Error() string {
	period := "validation"
	if e.Option == "val end" {
		period = "test"
	}
	also := ""
	if e.TrainAlsoBad {
		also = " (the train end too)"
	}
	return fmt.Sprintf("%s %s falls before the panel's fit end %s%s: its normalisation and bin edges were fitted on the days before %s, so the %s period from %s would be scored with statistics of its own days; give a date on or after %s (or import the panel with an earlier train end)",
		e.Option, FormatDate(e.Given), FormatDate(e.FitEnd), also, FormatDate(e.FitEnd), period, FormatDate(e.Date), FormatDate(e.FitEnd))
}

// FitEnd is the file's train_end attribute: the panel's normalisation and
// bin edges were fitted on the days before it (0: the file does not say).
func (d *Dataset) FitEnd() int32 { return d.fitEnd }

// PeriodStarts are the first days (YYYYMMDD) of the validation and test
// periods as this file and its options place them.
func (d *Dataset) PeriodStarts() (val, test int32) {
	return d.dates[d.valStart], d.dates[d.testStart]
}

// computeSplits places the boundaries and builds the three splits.
//
// Boundaries: v = first day >= TrainEnd, w = first day >= ValEnd. With the
// embargo E (>= longest horizon), a sequence ending on day d belongs to
//
//	train: d <= v-1-E   (its label window d+1..d+E ends before v)
//	val:   v <= d <= w-1-E
//	test:  d >= w
//
// so no label window of one split reaches a day of a later split.
func (d *Dataset) computeSplits(attrTrain, attrVal int32) error {
	trainEnd, valEnd := d.opt.TrainEnd, d.opt.ValEnd
	if trainEnd == 0 {
		trainEnd = attrTrain
	}
	if valEnd == 0 {
		valEnd = attrVal
	}
	v := int(float64(d.D) * 0.70)
	w := int(float64(d.D) * 0.85)
	if trainEnd != 0 {
		v = sort.Search(d.D, func(i int) bool { return d.dates[i] >= trainEnd })
	}
	if valEnd != 0 {
		w = sort.Search(d.D, func(i int) bool { return d.dates[i] >= valEnd })
	}
	maxH := d.horizons[len(d.horizons)-1]
	d.embargo = maxH
	if d.opt.Embargo > maxH {
		d.embargo = d.opt.Embargo
	}
	if v <= 0 || v >= d.D {
		return fmt.Errorf("train end %s: outside the panel's dates %s..%s", FormatDate(trainEnd), FormatDate(d.dates[0]), FormatDate(d.dates[d.D-1]))
	}
	if w <= v || w >= d.D {
		return fmt.Errorf("val end %s: must fall after the train end %s (the panel's own unless one is given) and before the last date %s", FormatDate(valEnd), FormatDate(d.dates[v]), FormatDate(d.dates[d.D-1]))
	}
	d.fitEnd = attrTrain
	if attrTrain != 0 {
		// Days before attrTrain fitted the normalisation and bins (import,
		// synth): they must stay in the training period. Dates taken from the
		// file itself agree with it; only dates given can fall before it.
		trainBad := d.opt.TrainEnd != 0 && d.dates[v] < attrTrain
		if d.opt.ValEnd != 0 && d.dates[w] < attrTrain {
			return &SplitBeforeFitError{Option: "val end", Given: d.opt.ValEnd, Date: d.dates[w], FitEnd: attrTrain, TrainAlsoBad: trainBad}
		}
		if trainBad {
			return &SplitBeforeFitError{Option: "train end", Given: d.opt.TrainEnd, Date: d.dates[v], FitEnd: attrTrain}
		}
	}
	if d.opt.SeqLen > d.D {
		return &SeqLenError{SeqLen: d.opt.SeqLen, Max: d.D, why: fmt.Sprintf("%d days in the file", d.D)}
	}
	if d.opt.SeqLen > d.maxRun {
		return &SeqLenError{SeqLen: d.opt.SeqLen, Max: d.maxRun, why: fmt.Sprintf("longest run of complete feature rows: %d days", d.maxRun)}
	}
	d.trainStart, d.valStart, d.testStart = 0, v, w
	d.splits = map[string]*Split{
		"train": d.buildSplit("train", 0, v-d.embargo),
		"val":   d.buildSplit("val", v, w-d.embargo),
		"test":  d.buildSplit("test", w, d.D),
	}
	for _, name := range []string{"train", "val", "test"} {
		s := d.splits[name]
		if s.n == 0 {
			lo, hi := s.first, s.end-1
			if lo < 0 {
				lo = 0
			}
			if hi < lo {
				return &EmptySplitError{Split: name, why: fmt.Sprintf("no end days left between %d and the next boundary after an embargo of %d days", d.dates[lo], d.embargo)}
			}
			return &EmptySplitError{Split: name, why: fmt.Sprintf("no valid sequence of %d days ending %d..%d", d.opt.SeqLen, d.dates[lo], d.dates[hi])}
		}
	}
	val := d.splits["val"]
	rng := rand.New(rand.NewSource(d.opt.Seed))
	d.valSet = val.Sample(d.opt.ValSize, rng)
	sort.Slice(d.valSet, func(a, b int) bool {
		x, y := d.valSet[a], d.valSet[b]
		return x.Ticker < y.Ticker || (x.Ticker == y.Ticker && x.Day < y.Day)
	})
	return nil
}

func (d *Dataset) buildSplit(name string, first, end int) *Split {
	s := &Split{name: name, first: first, end: end}
	if first < 0 {
		first = 0
	}
	for t := 0; t < d.T; t++ {
		start := -1
		flush := func(stop int) {
			if start >= 0 {
				s.runs = append(s.runs, seqRun{int32(t), int32(start), int32(stop - start)})
				s.cum = append(s.cum, s.n)
				s.n += int64(stop - start)
				start = -1
			}
		}
		for day := first; day < end; day++ {
			if d.isValid(t, day) {
				if start < 0 {
					start = day
				}
			} else {
				flush(day)
			}
		}
		flush(end)
	}
	return s
}

// Split returns "train", "val" or "test"; nil for any other name.
func (d *Dataset) Split(name string) *Split { return d.splits[name] }

// ValidationSet is the fixed subset of the val split (ValSize sequences drawn
// with Options.Seed, sorted by ticker and day), or the whole split if smaller.
func (d *Dataset) ValidationSet() []SeqID { return append([]SeqID(nil), d.valSet...) }

func (s *Split) Name() string { return s.name }

// Len is the number of valid sequences (complete window, all labels known).
func (s *Split) Len() int64 { return s.n }

// At returns the i-th sequence, ordered by ticker then end day.
// It panics when i is out of range, like a slice index.
func (s *Split) At(i int64) SeqID {
	if i < 0 || i >= s.n {
		panic(fmt.Sprintf("loader: split %s: index %d out of range [0,%d)", s.name, i, s.n))
	}
	k := sort.Search(len(s.cum), func(k int) bool { return s.cum[k] > i }) - 1
	r := s.runs[k]
	return SeqID{Ticker: r.ticker, Day: r.day + int32(i-s.cum[k])}
}

// Sample draws n sequences uniformly without replacement, in random order,
// using O(n) memory (SampleIndices over [0, Len)). n >= Len returns the whole
// split, shuffled. The result depends only on the state of rng and the split.
func (s *Split) Sample(n int, rng *rand.Rand) []SeqID {
	idx := SampleIndices(s.n, n, rng)
	if idx == nil {
		return nil
	}
	out := make([]SeqID, len(idx))
	for i, x := range idx {
		out[i] = s.At(x)
	}
	return out
}

// SampleIndices draws min(n, total) distinct indices of [0, total) uniformly,
// in random order, with a sparse Fisher-Yates shuffle: O(n) memory however
// large total is.
func SampleIndices(total int64, n int, rng *rand.Rand) []int64 {
	if n <= 0 || total <= 0 {
		return nil
	}
	if int64(n) > total {
		n = int(total)
	}
	swapped := make(map[int64]int64, n)
	val := func(x int64) int64 {
		if v, ok := swapped[x]; ok {
			return v
		}
		return x
	}
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		j := int64(i) + rng.Int63n(total-int64(i))
		vi, vj := val(int64(i)), val(j)
		swapped[j] = vi
		out[i] = vj
	}
	return out
}

// String is the console line for the split: "Train: 1,234,567 sequences".
func (s *Split) String() string {
	return fmt.Sprintf("%s: %s sequences", title(s.name), FormatCount(s.n))
}

// PrintCounts writes the sequence counts as the training console shows them:
//
//	Train: 1,234,567 sequences
//	Val: 1,000 sequences
//	Test: 98,765 sequences
//
// Val is the fixed validation subset (ValidationSet), not the whole val split.
func (d *Dataset) PrintCounts(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s\nVal: %s sequences\n%s\n", d.splits["train"], FormatCount(int64(len(d.valSet))), d.splits["test"])
	return err
}

func title(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// FormatCount writes n with thousands separators: 1234567 -> "1,234,567".
func FormatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return neg + string(out)
}
