// Package trainer is satrain's algorithm: the return-bin transformer, its
// training step and inference, selection-aware and standard training loops,
// checkpoints, and the Prometheus metrics of a run. It drives libtorch only
// through package torch and reads data only through package loader; the
// selection method itself (sampling, top-k, the extensions) is package
// selection, which the selection-aware loop calls.
//
// Every torch call happens on the goroutine that calls the exported entry
// points, which must be locked to its OS thread (torch.LockThread).
package trainer
