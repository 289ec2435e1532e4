// Package selection is the selection-aware training method in plain Go:
// sampling, the heap top-k over a scored sample, the documented extensions
// and the scoring cascade. It imports no torch, so its tests run without
// libtorch.
package selection
