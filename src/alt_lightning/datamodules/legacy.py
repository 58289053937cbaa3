"""DataModule settings saved by earlier versions, translated to the options of the one DataModule base.

Up to 0.1.0 few-shot draws, class subsets and the feature cache were wrapper DataModules, so a checkpoint's
``datamodule_hyper_parameters`` could nest them (``FewShotDataModule`` around ``ClassSubsetDataModule`` around
``UCFHMDBDataModule``, each inner one as ``base: {class_path, init_args}``), and every DataModule had
``feature_dir`` / ``feature_splits``. :func:`upgrade_data_hparams` turns those into the flat form read back by
``alt test --ckpt_path`` and ``alt predict --ckpt``: the innermost dataset's class and settings plus ``few_shot``,
``class_subset`` and ``features``.
"""

from __future__ import annotations

from typing import Any

from alt_lightning.data.feature_cache import SPLITS

#: The own arguments of each former wrapper, by its class name, and the option they become.
WRAPPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "FewShotDataModule": ("few_shot", ("shots", "seed", "manifest", "manifest_out", "allow_fewer")),
    "ClassSubsetDataModule": ("class_subset", ("classes", "subset", "draw", "draw_seed", "manifest_out")),
    "CachedFeatureDataModule": (
        "features",
        (
            *("feature_dir", "splits", "build", "batch_size", "num_workers", "build_batch_size", "build_workers"),
            *("store_source", "dtype", "shard_size_mb"),
        ),
    ),
}


def upgrade_data_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The flat form of a checkpoint's DataModule hyper-parameters (unchanged when already flat).

    Args:
        hparams: ``datamodule_hyper_parameters`` of a checkpoint: ``_class_path`` (written by the CLI), the init
            arguments, and for former wrappers ``base: {class_path, init_args}``.

    Returns:
        A new dict: ``_class_path`` of the innermost dataset, its init arguments, the settings a few-shot wrapper
        overrode, and ``few_shot`` / ``class_subset`` / ``features`` (plain dicts) for the wrappers found.
    """
    meta = {k: v for k, v in hparams.items() if k.startswith("_")}
    args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    class_path = meta.get("_class_path")
    options: dict[str, dict[str, Any]] = {}
    overrides: dict[str, Any] = {}
    while isinstance(args.get("base"), dict) and "class_path" in args["base"]:
        name = str(class_path or "").rsplit(".", 1)[-1]
        base = args.pop("base")
        option, keys = WRAPPERS.get(name, ("", ()))
        if option:
            # The outermost wrapper of a kind wins (it is the one whose settings were used).
            options.setdefault(option, {k: args.pop(k) for k in keys if k in args})
        # Anything else a wrapper held overrode its base's settings (FewShotDataModule's **kwargs); outer wins.
        overrides = {**args, **overrides}
        class_path, args = base["class_path"], dict(base.get("init_args") or {})
    flat = {**args, **overrides}
    feature_dir, feature_splits = flat.pop("feature_dir", None), flat.pop("feature_splits", None)
    features = options.pop("features", None)
    if features is not None:  # CachedFeatureDataModule: its own folder and splits (default: every split)
        features["dir"] = features.pop("feature_dir", "cache/features")
        features["splits"] = list(features.get("splits") or SPLITS)
        flat["features"] = features
    elif feature_dir:  # `feature_dir` on a DataModule: the cache of `feature_splits` (default: the test split)
        flat["features"] = {"dir": feature_dir, "splits": list(feature_splits or ("test",))}
    flat |= options
    if class_path is not None:
        meta["_class_path"] = class_path
    return {**meta, **flat}
