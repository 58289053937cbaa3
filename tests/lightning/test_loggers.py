"""The optional logger pieces (configs/trainer/wandb.yaml, mlflow.yaml): parsed by the CLI's parser, appended to the
run's loggers, built into Lightning's logger classes (with stand-ins for the packages, which the test environment does
not install), and one line naming the extra when the package is missing."""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from pathlib import Path

import pytest
from jsonargparse import Namespace

from alt_lightning.lightning.cli import parse_config

REPO = Path(__file__).resolve().parents[2]
PIECES = {"wandb": REPO / "configs/trainer/wandb.yaml", "mlflow": REPO / "configs/trainer/mlflow.yaml"}
CLASSES = {
    "wandb": "alt_lightning.lightning.loggers.WandbLogger",
    "mlflow": "alt_lightning.lightning.loggers.MLFlowLogger",
}


def _loggers(*configs: Path) -> list[Namespace]:
    return parse_config(["fit", *(a for c in configs for a in ("--config", str(c)))]).trainer.logger


def _build(logger: Namespace):
    """Instantiate a parsed ``class_path``/``init_args`` entry as the CLI does (import the class, pass the args)."""
    from lightning.pytorch.cli import instantiate_class

    return instantiate_class((), {"class_path": logger.class_path, "init_args": logger.init_args.as_dict()})


@pytest.mark.parametrize("extra", ["wandb", "mlflow"])
def test_piece_appends_its_logger_and_keeps_the_run_folder(extra: str) -> None:
    demo = REPO / "configs/demo.yaml"
    loggers = _loggers(demo, PIECES[extra])
    assert [lg.class_path.rsplit(".", 1)[-1] for lg in loggers] == [
        "TensorBoardLogger",
        "CSVLogger",
        CLASSES[extra].rsplit(".", 1)[-1],
    ]
    assert loggers[2].class_path == CLASSES[extra]
    before = _loggers(demo)
    assert [lg.init_args.as_dict() for lg in loggers[:2]] == [lg.init_args.as_dict() for lg in before]  # runs/demo
    args = loggers[2].init_args
    if extra == "wandb":
        assert (args.project, args.save_dir, args.offline, args.log_model) == ("alt-lightning", "runs", True, False)
    else:
        assert (args.experiment_name, args.save_dir, args.log_model) == ("alt-lightning", "runs/mlruns", False)
    alone = _loggers(PIECES[extra])  # after no other config: appended to the CLI's default loggers
    assert [lg.class_path for lg in alone][-1] == CLASSES[extra] and len(alone) == 3


@pytest.mark.parametrize("extra", ["wandb", "mlflow"])
def test_missing_package_is_one_line_naming_the_extra(extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, extra, None)  # not installed, whatever this environment holds
    logger = _loggers(PIECES[extra])[-1]
    with pytest.raises(ModuleNotFoundError) as err:
        _build(logger)
    cause, hint = err.value.cause, err.value.hint  # printed by `alt` as "error: <cause>" and "hint: <hint>"
    assert "\n" not in cause + hint and f"'{extra}' package, which is not installed" in cause
    assert f"pip install 'alt-lightning[{extra}]'" in hint and f"configs/trainer/{extra}.yaml" in hint


def _stand_in(monkeypatch: pytest.MonkeyPatch, name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_wandb_piece_builds_lightnings_logger_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import WandbLogger

    _stand_in(monkeypatch, "wandb")
    monkeypatch.setattr("lightning.pytorch.loggers.wandb._WANDB_AVAILABLE", True)
    logger = _build(_loggers(PIECES["wandb"])[-1])
    assert isinstance(logger, WandbLogger)
    assert logger._offline is True and logger._log_model is False
    assert logger._wandb_init["project"] == "alt-lightning" and logger.save_dir == "runs"


def test_mlflow_piece_builds_lightnings_logger_with_a_local_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import MLFlowLogger

    class Client:
        def __init__(self, tracking_uri: str) -> None:
            self.tracking_uri = tracking_uri

    mlflow = _stand_in(monkeypatch, "mlflow")
    mlflow.tracking = _stand_in(monkeypatch, "mlflow.tracking", MlflowClient=Client)
    monkeypatch.setattr("lightning.pytorch.loggers.mlflow._MLFLOW_AVAILABLE", True)
    logger = _build(_loggers(PIECES["mlflow"])[-1])
    assert isinstance(logger, MLFlowLogger)
    # MLFLOW_TRACKING_URI (read when Lightning is imported) wins over the piece's local store.
    expected = os.environ.get("MLFLOW_TRACKING_URI") or "file:runs/mlruns"
    assert logger._mlflow_client.tracking_uri == expected
    assert logger._experiment_name == "alt-lightning"
