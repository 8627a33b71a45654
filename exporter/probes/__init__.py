"""Probe kinds: one module or package per kind, and the parts they share.

`base.py` is the vocabulary (checks as data, samples, results, reasons),
`context.py` what a run gets besides its config (deadline, state, shared
clients), `shared/` the parts several kinds use (TLS, HTTP client, secrets,
conditions, presets). The table of kinds is `exporter/kinds.py`.
"""
