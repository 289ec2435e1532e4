package trainer

import "github.com/satrain/satrain/event"

// The phases of an iteration (event.Phase*), as the loops time them.
const (
	PhaseSampling   = event.PhaseSampling
	PhaseInference  = event.PhaseInference
	PhaseSelection  = event.PhaseSelection
	PhaseTraining   = event.PhaseTraining
	PhaseValidation = event.PhaseValidation
	PhaseCheckpoint = event.PhaseCheckpoint
)

// AllPhases in iteration order.
var AllPhases = event.AllPhases
