"""Pure-PyTorch ALT model: region encoder (ToMe), entity alignment, query adapter, text classifier.

``ALTConfig`` (``config.py``, with named presets) says what to build; ``build_alt`` (``build.py``) builds it.
Nothing in this package imports Lightning; ``alt_lightning.lightning`` wraps it.
"""
