"""``alt fit / validate / test / predict``: LightningCLI's subcommands, run by ``ALTCLI``.

The configs, checkpoint-restored settings, links, defaults and result lines are those of
:mod:`alt_lightning.lightning.cli`; this module only runs it and turns a checkpoint that does not fit into one line.
"""

from __future__ import annotations

from alt_lightning.lightning.checkpoints import CheckpointFormatError
from alt_lightning.lightning.cli import run_cli
from alt_lightning.lightning.module import CheckpointMismatchError


def run(argv: list[str]) -> int:
    """Run ``ALTCLI`` on ``argv`` (the subcommand first); returns the exit code.

    Raises:
        SystemExit: One line when the checkpoint does not fit the model built to load it, or a checkpoint folder is
            not an exported head.
    """
    try:
        run_cli(argv)
    except (CheckpointMismatchError, CheckpointFormatError) as err:
        raise SystemExit("\n".join(err.lines(f"alt {argv[0]}"))) from None
    finally:
        _close_process_group()
    return 0


def run_fit(argv: list[str]) -> int:
    """``alt fit``."""
    return run(["fit", *argv])


def run_validate(argv: list[str]) -> int:
    """``alt validate``."""
    return run(["validate", *argv])


def run_test(argv: list[str]) -> int:
    """``alt test``."""
    return run(["test", *argv])


def run_predict(argv: list[str]) -> int:
    """``alt predict`` over a DataModule (``alt predict VIDEO...`` is :mod:`alt_lightning.commands.predict`)."""
    return run(["predict", *argv])


def _close_process_group() -> None:
    """Tear down a process group that torchrun/SLURM launches leave open.

    Without it, interpreter exit can destroy gloo's threads while they run ("terminate called without an active
    exception", exit code -6) after a successful ``alt fit``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
