"""Analysis tools of the theory papers (pair weighting, learning curves, feature statistics)."""
