"""Fidelity audit of STC-Cacher on real weights and real video: `python -m stc.audit ...`
(see docs/stc/fidelity.md). Uses transformers; never imported by the rest of `stc`."""
