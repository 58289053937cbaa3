"""What ``alt fit / validate / test / predict`` leave out of the console: the one place that silences messages.

Warnings caused by our own code or configs are fixed where they arise (not filtered here). What is left are
messages of our dependencies that we cannot fix and that say nothing about the user's run; each is filtered by its
exact text, with the reason beside it. :func:`quiet_console` installs the filters when the ``alt`` command runs (never
on import: a library must not change its users' warning filters).
"""

from __future__ import annotations

import logging
import re
import warnings

from alt_lightning.errors import DropMessages

#: Python warnings silenced, by exact message (a regular expression matched at the start of the message).
WARNING_FILTERS: tuple[tuple[str, type[Warning]], ...] = (
    # torch >= 2.10 deprecated LeafSpec; Lightning 2.6 (lightning/pytorch/utilities/_pytree.py) still builds one for
    # every batch it moves. Lightning must change; nothing in our code or the user's config triggers it.
    (
        re.escape(
            "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
            "treespec.is_leaf()` instead."
        ),
        FutureWarning,
    ),
    # Lightning's fit loop warns about any module in eval mode at the start of training. ALT keeps its frozen
    # backbone in eval mode on purpose (RegionEncoder.train: no dropout in frozen layers); the model summary prints
    # their number, and ALTModule.on_train_start warns by name about any other module left in eval mode.
    (r"Found \d+ module\(s\) in eval mode at the start of training\. This may lead to unexpected behavior",
     UserWarning),
    # Lightning warns on every mid-epoch resume whose loader has no state_dict. ALT's training loader resumes exactly
    # without one (DeferredDataLoader and ShardSampler's skip: an interrupted and resumed fit equals an uninterrupted
    # one bit for bit, tests/lightning/test_resume.py), so the advice to avoid mid-epoch checkpoints is wrong here.
    (re.escape("You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not "
               "resumable."),
     UserWarning),
)  # fmt: skip

#: Python warnings silenced by category and the module that raises them.
MODULE_FILTERS: tuple[tuple[type[Warning], str], ...] = (
    # Lightning 2.6's LightningCLI (lightning/pytorch/cli.py) calls jsonargparse APIs deprecated in jsonargparse 4.49
    # (add_instantiator, instantiate_classes, skip_none): JsonargparseDeprecationWarning, a DeprecationWarning
    # attributed to that module; shown only under -W default or in tests. Lightning must move, not the user.
    (DeprecationWarning, r"lightning\.pytorch\.cli"),
)

#: Lightning info lines (``lightning.pytorch`` loggers) silenced, by exact start of message.
INFO_FILTERS: tuple[str, ...] = (
    # Lightning advertises its LitLogger cloud service on every run without one: not about the user's run.
    "💡 Tip: For seamless cloud",
    # ALT's trainer defaults add their own model summary callback; Lightning says it skips adding its default one
    # (there is no setting that keeps the summary and drops the line).
    "Trainer already configured with model summary callbacks",
)


_INFO_FILTER = DropMessages(*INFO_FILTERS)


def quiet_console() -> None:
    """Install the filters of :data:`WARNING_FILTERS` and :data:`INFO_FILTERS` (idempotent)."""
    for message, category in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for category, module in MODULE_FILTERS:
        warnings.filterwarnings("ignore", category=category, module=module)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        # On the logger (records logged on it) and on its handlers (records propagated from its child loggers).
        for target in (logger, *logger.handlers):
            if _INFO_FILTER not in target.filters:
                target.addFilter(_INFO_FILTER)
