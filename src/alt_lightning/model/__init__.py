"""Pure-PyTorch ALT model: region encoder (ToMe), entity alignment, query adapter, text classifier.

Nothing in this package imports Lightning; ``alt_lightning.lightning`` wraps it.
"""
