"""Optimizer benchmark (issue 6): our surrogate algorithms, driven through the gRPC service, against peers.

Modules: ``spaces`` (neutral search spaces), ``tasks`` (grid tables, COCO functions, live scikit-learn
tuning), ``peers`` (the optimizers behind one ask/tell interface), ``service`` (ours over gRPC),
``harness`` (the loop), ``metrics`` (trials/cost to best, regret, normalised score, paired tests,
ranks) and ``report`` (Markdown tables and plots). Entry point: ``bench/run_optimizers.py``.
"""
