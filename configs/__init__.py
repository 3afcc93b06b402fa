"""Experiment configs: one file per model family, presets via `get_config(arg)`."""
