"""Optional experiment trackers: Lightning's Weights & Biases and MLflow loggers, each installed by an extra.

``configs/trainer/wandb.yaml`` and ``configs/trainer/mlflow.yaml`` add these loggers beside the run's TensorBoard and
CSV logs. They are Lightning's own classes with the same arguments; the only difference is that a missing package
is one line naming the extra that installs it (``pip install 'alt-lightning[wandb]'``), where Lightning names a bare
requirement. Nothing here imports ``wandb`` or ``mlflow``: Lightning does, when the logger is built.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger as _LightningMLFlowLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

from alt_lightning.errors import MissingExtraError


def require_extra(module: str, extra: str, what: str) -> None:
    """Stop in one line when an optional package is not installed.

    Args:
        module: The package's import name (``wandb``).
        extra: Our extra that installs it (``alt-lightning[<extra>]``).
        what: What needs it, for the message.

    Raises:
        MissingExtraError: (a ``ModuleNotFoundError``) naming the package, the extra and the config piece to leave
            out instead; the ``alt`` command prints it as one line and a hint.
    """
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{what} needs the '{module}' package, which is not installed",
            f"pip install 'alt-lightning[{extra}]' (or leave configs/trainer/{extra}.yaml out of the command).",
            name=module,
        )


#: Logger class name -> (package, extra, what needs it): the optional trackers.
OPTIONAL_LOGGERS = {
    "WandbLogger": ("wandb", "wandb", "The Weights & Biases logger (trainer.logger: WandbLogger)"),
    "MLFlowLogger": ("mlflow", "mlflow", "The MLflow logger (trainer.logger: MLFlowLogger)"),
}


def check_logger_extras(class_paths: list[str]) -> None:
    """Before anything is built: every optional logger named (ours or Lightning's) has its package installed.

    Raises:
        MissingExtraError: For the first one that has not (config parsers would bury it in a longer message).
    """
    for class_path in class_paths:
        found = OPTIONAL_LOGGERS.get(str(class_path).rsplit(".", 1)[-1])
        if found is not None:
            require_extra(*found)


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` (same arguments); without ``wandb``, one line naming the ``[wandb]`` extra.

    Args:
        **kwargs: Arguments of :class:`lightning.pytorch.loggers.WandbLogger` (``project``, ``name``, ``save_dir``,
            ``offline``, ``log_model``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        require_extra(*OPTIONAL_LOGGERS["WandbLogger"])
        super().__init__(**kwargs)


class MLFlowLogger(_LightningMLFlowLogger):
    """Lightning's ``MLFlowLogger`` (same arguments); without ``mlflow``, one line naming the ``[mlflow]`` extra.

    Args:
        **kwargs: Arguments of :class:`lightning.pytorch.loggers.MLFlowLogger` (``experiment_name``, ``run_name``,
            ``tracking_uri``, ``save_dir``, ``log_model``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        require_extra(*OPTIONAL_LOGGERS["MLFlowLogger"])
        super().__init__(**kwargs)
