"""Retraining trimmed networks with PyTorch Lightning (the only part that imports Lightning)."""
