// Package trainer runs satrain's training: selection-aware and standard
// loops over a model (package model), resume and checkpoints, and data
// parallelism. It drives libtorch only through packages torch and model and
// reads data only through package loader; the selection method itself
// (sampling, top-k, the extensions) is package selection, which the
// selection-aware loop calls. Studies of several runs are package compare.
//
// Every torch call happens on the goroutine that calls the exported entry
// points, which must be locked to its OS thread (torch.LockThread).
package trainer
