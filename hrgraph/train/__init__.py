"""Training: recipes, data, the training loop, checkpoints, experiments and reports."""
