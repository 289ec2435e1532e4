// Package model is satrain's return-bin transformer and the engine that
// trains and scores it: the configuration and presets (Config, Presets),
// the parameters and forward pass (Model, Forward; see docs/MODEL.md), the
// losses and the expected return, and Engine, which owns a model on its
// device with its AdamW optimizer and runs training steps (TrainStep,
// TrainShard under data parallelism) and inference (Infer) in the run's
// precision (ScoreIn switches it for a scoring cascade).
//
// It drives libtorch only through package torch, and knows nothing of data
// files, selection, checkpoints or loops. Every call must come from the
// goroutine that holds the OS thread (torch.LockThread).
package model
