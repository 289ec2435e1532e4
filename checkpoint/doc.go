// Package checkpoint is satrain's checkpoint format and a run's save dir.
//
// The format (Save, Load, Meta, Info): a .pt file that PyTorch's
// torch.load(weights_only=True) opens, holding the model's weights as CPU
// float32, optionally the AdamW state, the bin centers, the model config and
// the run's record (Meta), with a content checksum over all of it that Load
// verifies. Writes are atomic (temporary file, fsync, rename) and, through
// Writer, asynchronous: the state is copied to host memory on the caller's
// thread and serialised and written in the background.
//
// The save dir (RunDir): every file name a run writes, which of them is the
// latest or the best, the checkpoint `--resume-from auto` continues, whether
// the folder holds another run, and the lock a live run holds on it (LockSaveDir).
//
// It knows the model (package model) but nothing of loops or selection.
package checkpoint
