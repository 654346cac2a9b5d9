"""oodbench: out-of-distribution detection benchmark suite built around SeTAR.

SeTAR (Li et al., NeurIPS 2024) replaces chosen weight matrices of CLIP or of a vision classifier with
low-rank approximations picked by a greedy search on the LoCoOp loss. In oodbench it is a *network
modifier* that composes with every registered *postprocessor* (OOD score).
"""

__version__ = "0.1.0"
