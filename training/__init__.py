"""What every trainer shares: fine-tuning, batch-norm recalibration, accuracy, checkpoints, one training config."""
