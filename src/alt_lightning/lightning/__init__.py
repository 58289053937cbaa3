"""Lightning wrappers: the ALT LightningModule, callbacks, and the CLI that reads configs and checkpoints."""

from alt_lightning.lightning.module import ALTModule

__all__ = ["ALTModule"]
