"""Reporting: tables, figures, leaderboard and plots built from stored runs (read-only over the store)."""
