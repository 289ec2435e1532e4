package selection

import (
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
)

// Stratified sampling (Stratify): equal sample counts per sector, ticker or
// span of end days; the selection is then the method's, over that sample.

type stratum struct {
	label string
	pool  segPool
}

// sampleStrata draws n with equal counts per stratum, then shuffles them so
// that the sample's order says nothing about the strata.
func (m *strategyState) sampleStrata(n int, rng *rand.Rand) []loader.SeqID {
	caps := make([]int, len(m.strata))
	for i, s := range m.strata {
		caps[i] = int(min(s.pool.n, int64(math.MaxInt32)))
	}
	quota := allocateEqual(n, caps)
	var out []loader.SeqID
	for i := range m.strata {
		out = append(out, m.strata[i].pool.sample(quota[i], rng)...)
	}
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// stratumShare is the share of the selection top (indices into ids) in each
// stratum; every stratum is listed, zeros included.
func (m *strategyState) stratumShare(ids []loader.SeqID, top []int) map[string]float64 {
	share := map[string]float64{}
	for _, l := range m.labels {
		share[l] = 0
	}
	count := map[string]int{}
	for _, i := range top {
		count[m.stratumOf(ids[i])]++
	}
	for l, n := range count {
		share[l] = float64(n) / float64(len(top))
	}
	return share
}

// parseStratify splits "date-bucket:N" into its kind and N.
func parseStratify(s string) (kind string, buckets int, err error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case "sector", "ticker":
		if hasArg {
			return "", 0, option.Errorf("{stratify} %q: %s takes no argument", s, kind)
		}
		return kind, 0, nil
	case "date-bucket":
		buckets = 10
		if hasArg {
			buckets, err = strconv.Atoi(arg)
			if err != nil || buckets < 2 || buckets > 1000 {
				return "", 0, option.Errorf("{stratify} %q: want date-bucket:N with N in 2..1000", s)
			}
		}
		return kind, buckets, nil
	}
	return "", 0, option.Errorf("{stratify} %q: want sector, ticker or date-bucket[:N]", s)
}

// buildStrata partitions the train split's runs into the strata.
func (m *strategyState) buildStrata(spec string, ds *loader.Dataset) error {
	kind, nb, err := parseStratify(spec)
	if err != nil {
		return err
	}
	tickers := ds.Tickers()
	index := map[string]int{}
	stratumNamed := func(label string) *stratum {
		if i, ok := index[label]; ok {
			return &m.strata[i]
		}
		index[label] = len(m.strata)
		m.strata = append(m.strata, stratum{label: label})
		return &m.strata[len(m.strata)-1]
	}
	switch kind {
	case "ticker":
		for _, r := range m.runs.segs {
			stratumNamed(tickers[r.ticker]).pool.add(r)
		}
		m.stratumOf = func(id loader.SeqID) string { return tickers[id.Ticker] }
	case "sector":
		groups := ds.Groups()
		if groups == nil {
			return option.Errorf("{stratify} sector: %s has no sector labels (the optional groups dataset; "+
				"`satrain data import-csv --constituents` writes them); use {stratify} ticker or date-bucket", ds.Path())
		}
		label := func(t int32) string {
			if g := groups[t]; g != "" {
				return g
			}
			return "unknown"
		}
		for _, r := range m.runs.segs {
			stratumNamed(label(r.ticker)).pool.add(r)
		}
		m.stratumOf = func(id loader.SeqID) string { return label(id.Ticker) }
	case "date-bucket":
		lo, hi := int32(math.MaxInt32), int32(-1)
		for _, r := range m.runs.segs {
			lo, hi = min(lo, r.day), max(hi, r.day+r.n-1)
		}
		if hi < lo {
			return option.Errorf("{stratify} %s: the training split is empty", spec)
		}
		span := int64(hi-lo) + 1
		nb = int(min(int64(nb), span))
		// Bucket b holds end days [start(b), start(b+1)).
		start := func(b int) int32 { return lo + int32(span*int64(b)/int64(nb)) }
		dates := ds.Dates()
		names := make([]string, nb)
		for b := range names {
			names[b] = fmt.Sprintf("%d-%d", dates[start(b)], dates[start(b+1)-1])
			stratumNamed(names[b])
		}
		for _, r := range m.runs.segs {
			for b := 0; b < nb; b++ {
				a, e := max(r.day, start(b)), min(r.day+r.n, start(b+1))
				if e > a {
					m.strata[b].pool.add(seg{ticker: r.ticker, day: a, n: e - a})
				}
			}
		}
		m.stratumOf = func(id loader.SeqID) string {
			b := int(int64(id.Day-lo) * int64(nb) / span)
			b = max(0, min(nb-1, b))
			for b > 0 && id.Day < start(b) {
				b--
			}
			for b < nb-1 && id.Day >= start(b+1) {
				b++
			}
			return names[b]
		}
	}
	kept := m.strata[:0]
	for _, s := range m.strata {
		m.labels = append(m.labels, s.label)
		if s.pool.n > 0 {
			kept = append(kept, s)
		}
	}
	m.strata = kept
	if len(m.strata) == 0 {
		return option.Errorf("{stratify} %s: the training split is empty", spec)
	}
	return nil
}
