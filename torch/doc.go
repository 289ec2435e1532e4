// Package torch is satrain's only cgo package: a small Go API over libtorch
// through the C ABI shim in csrc (built into libsatorch.so). It knows nothing
// of stocks or training loops.
//
// # Errors
//
// Every C call returns an error message or nothing; no libtorch exception can
// abort the process. Errors come back as *Error, which carries the operation,
// libtorch's message and a Kind; IsOutOfMemory tells a caller when to retry
// with a smaller batch.
//
// # Memory
//
// Tensors own native memory. Persistent tensors (parameters, optimizer state)
// are freed with Free. Everything a training or inference step creates goes
// through a Scope: its ops return tensors it tracks, and Close frees them all at
// the step boundary; Keep moves a result out of the scope. The first failing op
// makes the scope's error sticky: later ops return nil without calling libtorch,
// and Err reports the first failure, so step code reads straight through and
// checks once. runtime.AddCleanup frees a forgotten tensor as a safety net only.
//
// When libsatorch.so loads it tells glibc to keep freed memory in the process
// (mmap threshold 32 MiB, trim threshold 1 GiB, one arena), so the next batch
// reuses pages instead of faulting them in again; SATRAIN_MALLOC=system opts
// out, and MallocPolicy reports which is in force.
//
// # Threads
//
// libtorch keeps grad mode, autocast state, inference mode and the current CUDA
// stream per OS thread. Every torch call of a program must therefore run on one
// goroutine locked to its OS thread: call LockThread at the start of that
// goroutine (satrain does it in main) and never call torch from any other
// goroutine. Other goroutines (HDF5 reads, the metrics server) only exchange
// plain Go slices with it. The one exception is work on private CPU tensors
// that no other code references and that needs no thread-local state:
// trainer finishes checkpoints (Dict.Serialize of host copies) on a
// background goroutine.
//
// CPU thread pools: SetThreadPolicy(n) sizes libtorch's intra-op pool to n
// and the inter-op pool to 1; the package applies
// SetThreadPolicy(DefaultThreads()) (libtorch's own default, capped by the
// CPUs of the affinity mask) when it loads. Processes sharing a machine, such
// as the ranks of a distributed run on one host, should each call
// SetThreadPolicy(max(1, AffinityCPUs()/ranksOnHost)).
package torch
