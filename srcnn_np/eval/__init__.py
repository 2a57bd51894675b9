"""Evaluation, apart from the runtime: `python -m srcnn_np evaluate` (evaluate.py), its science-fidelity
suite (star_eval.py), the metrics, the synthetic skies and the degradation of the SR protocol (degrade.py)."""
