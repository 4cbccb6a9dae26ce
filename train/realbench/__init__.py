"""The real-footage benchmark (``python -m train.evaluate --suite real``): held-out clips and panned stills
under clean and damaged LR (H.264, JPEG, noise), with full-reference, no-reference and temporal metrics.

``sources`` (the set and the conditions), ``metrics``, ``niqe``, ``flicker``, ``suite`` (the run), ``report``
(tables and JSON), ``crops`` (side-by-side PNGs).
"""
