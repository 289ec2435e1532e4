package backtest

import (
	"math"
	"strings"
	"testing"
)

// excessReport is a report whose dates have the given top-k excess (over a
// universe mean of 1) on consecutive dates from 2024-01-02, 1-day horizon.
func excessReport(excess ...float64) *Report {
	r := &Report{Config: Config{HorizonDays: 1}}
	for i, x := range excess {
		r.Dates = append(r.Dates, DateRow{Date: Date(20240102 + i), MeanRealized: 1, TopKMeanRealized: 1 + x})
	}
	return r
}

// TestPairedDifferencesHandComputed: two arms, two seeds, three dates.
//
//	seed 1: A 0.03 0.01 0.02, B 0.01 0.00 0.02: A - B = 0.02 0.01 0.00
//	seed 2: A 0.02 0.03 0.01, B 0.00 0.01 0.01: A - B = 0.02 0.02 0.00
//
// Per-date means 0.02, 0.015, 0: mean 0.035/3. Lag 0: SE_dates =
// √(γ0/3), γ0 = Σ(dev²)/3. Seed means 0.01 and 0.04/3: SE_seeds =
// |0.04/3 - 0.01|/√2/√2; seed t = (0.035/3)/SE_seeds = 7.
func TestPairedDifferencesHandComputed(t *testing.T) {
	res := []ArmResult{
		{Arm: "standard", Seed: 1, Report: excessReport(0.01, 0.00, 0.02)},
		{Arm: "standard", Seed: 2, Report: excessReport(0.00, 0.01, 0.01)},
		{Arm: "selection_aware", Seed: 1, Report: excessReport(0.03, 0.01, 0.02)},
		{Arm: "selection_aware", Seed: 2, Report: excessReport(0.02, 0.03, 0.01)},
	}
	diffs := PairedDifferences(res)
	var d *PairedDifference
	for i := range diffs {
		if diffs[i].Metric == "topk.excess" {
			d = &diffs[i]
		}
		if diffs[i].Metric == "precision.vol_matched_excess" {
			t.Errorf("vol-matched excess paired though no report has it")
		}
	}
	if d == nil {
		t.Fatalf("no topk.excess difference in %+v", diffs)
	}
	if d.A != "selection_aware" || d.B != "standard" || d.Seeds != 2 || d.Dates != 3 {
		t.Fatalf("pair %s - %s over %d seeds, %d dates; want selection_aware - standard, 2, 3", d.A, d.B, d.Seeds, d.Dates)
	}
	m := 0.035 / 3
	g0 := (math.Pow(0.02-m, 2) + math.Pow(0.015-m, 2) + math.Pow(0-m, 2)) / 3
	seDates := math.Sqrt(g0 / 3)
	seSeeds := (0.04/3 - 0.01) / math.Sqrt2 / math.Sqrt2
	se := math.Sqrt(seDates*seDates + seSeeds*seSeeds)
	nearTol(t, "mean", d.Mean, m, 1e-12)
	nearTol(t, "SE dates", d.SEDates, seDates, 1e-12)
	nearTol(t, "SE seeds", d.SESeeds, seSeeds, 1e-12)
	nearTol(t, "seed t", d.SeedT, 7, 1e-9)
	nearTol(t, "CI lo", d.CI95.Lo, m-1.959963984540054*se, 1e-12)
	if !d.Distinguished { // [0.0015, 0.0218]
		t.Errorf("CI [%g, %g] excludes 0, yet not distinguished", d.CI95.Lo, d.CI95.Hi)
	}

	// A date one arm lacks is not paired: drop date 3 of standard seed 2.
	res[1].Report.Dates = res[1].Report.Dates[:2]
	for _, d := range PairedDifferences(res) {
		if d.Metric == "topk.excess" {
			// Per-date means 0.02, 0.015, 0.00 (seed 1 alone on date 3): unchanged mean,
			// seed 2's mean now 0.02.
			nearTol(t, "mean, a date missing", d.Mean, m, 1e-12)
			nearTol(t, "SE seeds, a date missing", d.SESeeds, (0.02-0.01)/2, 1e-12)
		}
	}

	var b strings.Builder
	WritePairedTable(&b, diffs)
	if !strings.Contains(b.String(), "selection_aware - standard") || !strings.Contains(b.String(), "116.7 [15.1, 218.2] *") || !strings.Contains(b.String(), "] *") {
		t.Errorf("paired table:\n%s", b.String())
	}
}

// TestPairedDifferencesOneSeed: with one seed the training noise is not
// measured: SE_seeds 0, seed t 0, the interval from the dates alone.
func TestPairedDifferencesOneSeed(t *testing.T) {
	res := []ArmResult{
		{Arm: "a", Seed: 7, Report: excessReport(0.01, 0.02, 0.03, 0.00)},
		{Arm: "b", Seed: 7, Report: excessReport(0.01, 0.01, 0.01, 0.01)},
		{Arm: "b", Seed: 8, Report: excessReport(0.01, 0.01, 0.01, 0.01)}, // no partner in a
	}
	for _, d := range PairedDifferences(res) {
		if d.Metric != "topk.excess" {
			continue
		}
		if d.Seeds != 1 || d.SESeeds != 0 || d.SeedT != 0 || d.A != "b" || d.B != "a" {
			t.Errorf("one seed: %+v", d)
		}
		nearTol(t, "SE", d.CI95.SE, NeweyWestSE([]float64{0, -0.01, -0.02, 0.01}, 0), 1e-12)
	}
}

// TestArmIntervals: an arm's own interval is the paired difference's
// arithmetic with nothing subtracted: seeds 1 and 2 of selection_aware
// above have per-date means 0.025, 0.02, 0.015 (mean 0.02) and seed means
// 0.02, 0.02 (SE over seeds 0).
func TestArmIntervals(t *testing.T) {
	res := []ArmResult{
		{Arm: "selection_aware", Seed: 1, Report: excessReport(0.03, 0.01, 0.02)},
		{Arm: "selection_aware", Seed: 2, Report: excessReport(0.02, 0.03, 0.01)},
	}
	iv := ArmIntervals(res)["selection_aware"]
	if len(iv) == 0 || iv[0].Metric != "topk.excess" || iv[0].B != "" {
		t.Fatalf("intervals %+v", iv)
	}
	d := iv[0]
	nearTol(t, "mean", d.Mean, 0.02, 1e-12)
	nearTol(t, "SE seeds", d.SESeeds, 0, 1e-12)
	g0 := (0.005*0.005 + 0 + 0.005*0.005) / 3
	nearTol(t, "SE", d.CI95.SE, math.Sqrt(g0/3), 1e-12)
	var b strings.Builder
	WriteArmIntervals(&b, []string{"selection_aware"}, map[string][]PairedDifference{"selection_aware": iv})
	if !strings.Contains(b.String(), "selection_aware  200.0 [") {
		t.Errorf("table:\n%s", b.String())
	}
}
