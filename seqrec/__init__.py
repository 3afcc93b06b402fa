"""Shared core for sequential recommenders: data, sequences, metrics, losses, training."""
