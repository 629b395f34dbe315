"""Training: specs, datasets, models, the loop and checkpoints."""
