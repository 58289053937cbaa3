"""``alt cache`` (``commands/cache.py``) on configs that set the feature cache on the DataModule itself."""

from __future__ import annotations

from pathlib import Path


def test_cache_build_and_info_use_the_features_option_of_the_datamodule(
    synthetic_root: Path, model_config: dict, tmp_path: Path, capsys
) -> None:
    """The shipped zero-/few-shot configs set the ``features`` option on the DataModule (default: the test split);
    ``alt cache info/build --config`` must then use those caches (and only ``features.splits``)."""
    import yaml

    from alt_lightning.cli import main as alt_main
    from alt_lightning.data.feature_cache import list_caches

    cache_dir = tmp_path / "cache"
    config = {
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False},
        "model": model_config,
        "data": {
            "class_path": "alt_lightning.datamodules.VideoListDataModule",
            "init_args": {
                "root": str(synthetic_root),
                "classes": "classes.txt",
                "test_list": "test.txt",
                "num_frames": 2,
                "num_workers": 0,
                "features": {"dir": str(cache_dir)},
                "bad_file_log": str(tmp_path / "bad.csv"),
            },
        },
    }
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(config))
    assert alt_main(["cache", "build", "--config", str(path)]) == 0
    assert [c.split for c in list_caches(cache_dir)] == ["test"]  # features.splits, not every split
    capsys.readouterr()
    assert alt_main(["cache", "info", "--config", str(path)]) == 0
    assert "(built, read by this configuration)" in capsys.readouterr().out
