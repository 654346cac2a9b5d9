"""Orchestration: one run through the pipeline (:mod:`.pipeline`), and grids, seeds and the runs a paper's tables
need (:mod:`.sweep`). Calls down only: the store, features, methods' contract, metrics; never reporting or the CLI."""
