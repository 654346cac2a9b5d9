"""Data loading: image sources (file lists or in-memory arrays), readers of list formats, verification.

Knows no model.
"""
