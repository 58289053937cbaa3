"""alt_lightning: ALT (Align before Adapt) for video action recognition, in PyTorch Lightning."""

__version__ = "0.1.0"
