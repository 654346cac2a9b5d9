"""The built-in paper plugins (installed as ``oodbench.papers``): each declares the tables and figures of one paper
through the contract of :mod:`oodbench.paper` and ships its published numbers as package data."""
