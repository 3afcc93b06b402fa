"""Next-item baselines added as model families through the registry (Caser, SASRec)."""
