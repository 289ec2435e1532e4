package report

import (
	"math"
	"testing"

	"github.com/satrain/satrain/event"
)

// gauge reads the value of gauge name (with label phase = phase when not
// empty) from m's registry; ok is false when the series is not exported.
func gauge(t *testing.T, m *Metrics, name, phase string) (v float64, ok bool) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mfs {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if phase == "" || (len(mt.GetLabel()) == 1 && mt.GetLabel()[0].GetValue() == phase) {
				return mt.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestPrometheusUnmeasuredIsNaN: the phase durations and the device memory
// gauges read NaN until measured, never 0; the device memory stays NaN on the
// CPU; a phase an iteration did not run reads 0 once an iteration has ended.
func TestPrometheusUnmeasuredIsNaN(t *testing.T) {
	for _, cuda := range []bool{false, true} {
		m := NewMetrics("v", "1.13.0", cuda)
		p := NewPrometheus(m)
		check := func(when, name, phase string, want float64) {
			t.Helper()
			got, ok := gauge(t, m, name, phase)
			if !ok {
				t.Fatalf("cuda %v, %s: %s{%s} is not exported", cuda, when, name, phase)
			}
			if math.IsNaN(want) != math.IsNaN(got) || (!math.IsNaN(want) && got != want) {
				t.Errorf("cuda %v, %s: %s{%s} = %v, want %v", cuda, when, name, phase, got, want)
			}
		}
		for _, ph := range event.AllPhases {
			check("before any iteration", "satrain_phase_duration_seconds", ph, math.NaN())
		}
		check("before any iteration", "satrain_device_memory_allocated_bytes", "", math.NaN())
		check("before any iteration", "satrain_device_memory_peak_bytes", "", math.NaN())

		p.Report(event.IterationEnded{Iteration: 1, PhaseSeconds: map[string]float64{event.PhaseTraining: 1.5},
			OnDevice: cuda, DeviceMemoryAllocated: 1 << 20, DeviceMemoryPeak: 1 << 21})
		check("after iteration 1", "satrain_phase_duration_seconds", event.PhaseTraining, 1.5)
		check("after iteration 1", "satrain_phase_duration_seconds", event.PhaseValidation, 0)
		mem, peak := math.NaN(), math.NaN()
		if cuda {
			mem, peak = 1<<20, 1<<21
		}
		check("after iteration 1", "satrain_device_memory_allocated_bytes", "", mem)
		check("after iteration 1", "satrain_device_memory_peak_bytes", "", peak)
	}
}
