"""SeTAR (Li et al., NeurIPS 2024 and its arXiv version): table and figure specs, published numbers, deviations."""
