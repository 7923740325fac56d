"""The synthetic piano-video dataset: MIDI -> keyboard video + piano audio (see make_dataset)."""
