"""Feature sets (the arrays postprocessors read), their extraction, and the keyed on-disk cache."""

from oodbench.features.featureset import PER_SAMPLE, SHARED, Features

__all__ = ["Features", "PER_SAMPLE", "SHARED"]
