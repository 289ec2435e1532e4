package trainer

// CheckpointInfo is what a checkpoint records about the run that wrote it:
// its Meta (kind, iteration, data file, seed and the run's flags in Meta.Run)
// and the model's shape. The CLI reads it before a resumed run starts, to
// take the run's settings from the checkpoint.
type CheckpointInfo struct {
	Path     string
	Meta     Meta
	Config   ModelConfig
	HasOptim bool // the file holds the optimizer state (it can continue its run)
}

// ReadCheckpointInfo reads and verifies the checkpoint at path exactly as
// LoadCheckpoint does (format, version, content checksum: a damaged file is
// refused here, before a run creates anything) and keeps only its record; the
// tensors are released before it returns. Errors name the file.
func ReadCheckpointInfo(path string) (CheckpointInfo, error) {
	l, err := LoadCheckpoint(path)
	if err != nil {
		return CheckpointInfo{}, err
	}
	defer l.Free()
	return CheckpointInfo{Path: path, Meta: l.Meta, Config: l.Config, HasOptim: l.HasOptim}, nil
}
