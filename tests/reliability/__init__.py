"""Reliability under load, faults and hostile input, measured (issue #8)."""
