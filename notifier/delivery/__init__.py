"""Delivery: the dispatcher's stages (claim -> send -> record, with fallback, completion and
reconciliation) and transitions.py, the one place a delivery's or a run's status changes.
dispatch.py wires the stages; its docstring maps them."""
