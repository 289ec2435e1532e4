// Package loader reads and writes the satrain market panel: an HDF5 file of
// tickers x trading days holding float32 features, forward gross returns per
// horizon and per-horizon bin edges (docs/FORMAT.md describes it).
//
// Open validates a file and computes leakage-free train/val/test splits by
// date (an embargo of at least the longest horizon before each boundary);
// Split.Sample draws training sequences uniformly without replacement;
// ReadWindows and Stream fill [n][SeqLen][F] float32 batches plus bin labels
// and realized returns, from memory (preload) or by hyperslab reads
// (stream). Synth writes a synthetic panel with a planted signal, ImportCSV
// builds a panel from per-ticker daily OHLCV CSV files, and Inspect
// summarises a file.
//
// All HDF5 calls run on one goroutine locked to its OS thread (HDF5 1.10 is
// serialised by a global lock), so every function here is safe to call from
// any goroutine. The package does not import torch or trainer.
package loader
