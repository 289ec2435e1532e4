package selection

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/satrain/satrain/option"
)

// The top-k schedule (TopKSchedule): k as a function of the iteration.

type kValue struct {
	v   float64
	pct bool
}

func (v kValue) count(sample int) int {
	if v.pct {
		return max(1, int(math.Round(v.v/100*float64(sample))))
	}
	return int(v.v)
}

func (v kValue) String() string {
	if v.pct {
		return fmt.Sprintf("%g%%", v.v)
	}
	return fmt.Sprintf("%d", int(v.v))
}

type kStep struct {
	from int
	k    kValue
}

type kSchedule struct {
	kind  string // linear or step
	a, b  kValue
	steps []kStep
}

func parseKValue(s string) (kValue, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0 && v <= 100) {
			return kValue{}, fmt.Errorf("%q: a percentage of the sample size in (0, 100]", s)
		}
		return kValue{v: v, pct: true}, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return kValue{}, fmt.Errorf("%q: a count >= 1 or a percentage like 2%%", s)
	}
	return kValue{v: float64(v)}, nil
}

// parseKSchedule reads "linear:A:B" or "step:K1@I1,K2@I2,...".
func parseKSchedule(s string) (kSchedule, error) {
	bad := func(err error) (kSchedule, error) {
		return kSchedule{}, option.Errorf("{top-k-schedule} %q: %v (want linear:A:B or step:K1@I1,K2@I2,...; A, B, K a count or a percentage of {sample-size})", s, err)
	}
	kind, rest, _ := strings.Cut(s, ":")
	sch := kSchedule{kind: kind}
	switch kind {
	case "linear":
		a, b, ok := strings.Cut(rest, ":")
		if !ok || strings.Contains(b, ":") {
			return bad(fmt.Errorf("two values"))
		}
		var err error
		if sch.a, err = parseKValue(a); err != nil {
			return bad(err)
		}
		if sch.b, err = parseKValue(b); err != nil {
			return bad(err)
		}
	case "step":
		if rest == "" {
			return bad(fmt.Errorf("no steps"))
		}
		for _, part := range strings.Split(rest, ",") {
			kv, itS, ok := strings.Cut(part, "@")
			if !ok {
				return bad(fmt.Errorf("%q: want K@ITERATION", part))
			}
			v, err := parseKValue(kv)
			if err != nil {
				return bad(err)
			}
			from, err := strconv.Atoi(strings.TrimSpace(itS))
			if err != nil || from < 1 {
				return bad(fmt.Errorf("%q: the iteration must be >= 1", part))
			}
			if n := len(sch.steps); n > 0 && from <= sch.steps[n-1].from {
				return bad(fmt.Errorf("iterations must increase"))
			}
			sch.steps = append(sch.steps, kStep{from: from, k: v})
		}
	default:
		return bad(fmt.Errorf("unknown kind %q", kind))
	}
	return sch, nil
}

// check rejects counts larger than the sample.
func (sch kSchedule) check(sample int) error {
	vals := []kValue{sch.a, sch.b}
	if sch.kind == "step" {
		vals = vals[:0]
		for _, s := range sch.steps {
			vals = append(vals, s.k)
		}
	}
	for _, v := range vals {
		if !v.pct && int(v.v) > sample {
			return option.Errorf("{top-k-schedule}: k %s is larger than {sample-size} %d", v, sample)
		}
	}
	return nil
}

// k is the schedule's value at iteration it (1-based) of c.Iterations,
// within 1..c.SampleSize.
func (sch kSchedule) k(c Config, it int) int {
	var k int
	switch sch.kind {
	case "linear":
		a, b := float64(sch.a.count(c.SampleSize)), float64(sch.b.count(c.SampleSize))
		t := 0.0
		if c.Iterations > 1 {
			t = math.Min(1, math.Max(0, float64(it-1)/float64(c.Iterations-1)))
		}
		k = int(math.Round(a + (b-a)*t))
	default:
		k = c.TopK
		for _, s := range sch.steps {
			if it >= s.from {
				k = s.k.count(c.SampleSize)
			}
		}
	}
	return max(1, min(k, max(1, c.SampleSize)))
}
