"""Conformance suite for the SPM kernel: one FF-M rule per test, across configurations."""
