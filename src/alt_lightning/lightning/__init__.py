"""Lightning wrappers: the ALT LightningModule and callbacks."""

from alt_lightning.lightning.module import ALTModule

__all__ = ["ALTModule"]
