"""Grammar augmentation: the statistical pronunciation dictionary, candidate expressions, greedy and CEM search, and its command line."""
