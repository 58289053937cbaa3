"""Default callbacks: per-video prediction files, throughput, alignment heatmaps in TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from alt_lightning.data.records import VideoRecord
from alt_lightning.lightning import ALTModule
from alt_lightning.lightning.callbacks import (
    AlignmentHeatmapLogger,
    PredictionWriter,
    StepSeed,
    ThroughputMonitor,
    alignment_maps,
    entity_patch_map,
    render_alignment,
    write_predictions,
)


def test_prediction_file_rows(tmp_path: Path) -> None:
    records = [VideoRecord(f"/v/{i}.mp4", 0, f"vid{i}") for i in range(4)]
    last_eval = {
        "index": torch.tensor([3, 1]),
        "label": torch.tensor([2, 0]),
        "probs": torch.tensor([[0.1, 0.2, 0.6, 0.1], [0.3, 0.4, 0.2, 0.1]]),
    }
    path = write_predictions(tmp_path / "p.csv", last_eval, records, ["a", "b", "c", "d"], top_k=2)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:6] == ["video_id", "path", "label_id", "label", "correct_top1", "correct_top2"]
    assert rows[0]["video_id"] == "vid3" and rows[0]["label"] == "c" and rows[0]["correct_top1"] == "1"
    assert list(rows[0])[6:9] == ["pred_id_1", "pred_1", "score_1"]
    assert (rows[0]["pred_1"], rows[0]["score_1"], rows[0]["pred_2"]) == ("c", "0.600000", "b")
    assert (rows[0]["pred_id_1"], rows[0]["pred_id_2"], rows[1]["pred_id_1"]) == ("2", "1", "1")
    assert rows[1]["video_id"] == "vid1" and rows[1]["correct_top1"] == "0" and rows[1]["correct_top2"] == "1"


def test_entity_patch_map_follows_the_source_map() -> None:
    # 2x2 patch grid; region 0 holds patches 0 and 1 (top row), region 1 patches 2 and 3; cls is token 0.
    source = torch.zeros(1, 3, 5)
    source[0, 0, 0] = 1
    source[0, 1, 1:3] = 1
    source[0, 2, 3:5] = 1
    entity, conf = entity_patch_map(source, torch.tensor([[5, 7]]), torch.tensor([[0.9, 0.4]]), (2, 2))
    assert entity.tolist() == [[[5, 5], [7, 7]]]
    assert torch.allclose(conf, torch.tensor([[[0.9, 0.9], [0.4, 0.4]]]))


@pytest.mark.parametrize("use_matplotlib", [False, True])
def test_render_alignment(use_matplotlib: bool) -> None:
    frames = np.full((3, 32, 32, 3), 100, np.uint8)
    entity = torch.tensor([[[0, 1], [1, 2]]] * 3)  # [T, 2, 2]
    conf = torch.full((3, 2, 2), 0.5)
    image, legend = render_alignment(frames, entity, conf, ["a", "b", "c"], use_matplotlib=use_matplotlib)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if not use_matplotlib:
        assert image.shape == (2 * 32 + 2, 3 * 32 + 2 * 2, 3)
        assert (image[:32, :32] == 100).all()  # the frame itself is drawn unchanged on top
        assert not (image[34:, :32] == 100).all()  # the overlay is coloured
    assert [name for name, _, _ in legend] == ["b", "a", "c"]  # most patches first
    assert [s for _, _, s in legend] == pytest.approx([0.5, 0.25, 0.25])


def test_callbacks_in_a_tiny_fit_and_test(list_datamodule, module_kwargs: dict, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pl.seed_everything(0)
    dm = list_datamodule
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    heatmaps = AlignmentHeatmapLogger(every_n_epochs=2, num_videos=2, num_frames=3)
    writer = PredictionWriter(top_k=3)
    logger = TensorBoardLogger(tmp_path, name="", version="")
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=logger,
        callbacks=[ThroughputMonitor(), writer, heatmaps],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(model, dm)
    metrics = trainer.callback_metrics
    assert float(metrics["perf/clips_per_s"]) > 0
    assert float(metrics["perf/frames_per_s"]) == pytest.approx(4 * float(metrics["perf/clips_per_s"]), rel=1e-4)
    assert heatmaps.logged == [1]  # every 2nd validation epoch: the second one
    assert not model.model.encoder.keep_source  # switched on only while drawing
    trainer.test(model, dm)
    assert writer.last_path == tmp_path / "predictions_test.csv"
    with writer.last_path.open() as f:
        assert len(list(csv.DictReader(f))) == 12  # every test video (4 classes x 3)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert {"alignment/video_0", "alignment/video_1"} <= set(events.Tags()["images"])
    assert "perf/clips_per_s" in events.Tags()["scalars"]


def test_step_seed_depends_only_on_seed_step_and_rank() -> None:
    from types import SimpleNamespace

    cb = StepSeed(seed=7)
    seeds = {(s, r): cb.step_seed(s, r) for s in range(3) for r in range(2)}
    assert len(set(seeds.values())) == 6 and cb.step_seed(1, 0) == seeds[(1, 0)]
    assert StepSeed(seed=8).step_seed(1, 0) != seeds[(1, 0)]
    draws = []
    for _ in range(2):
        torch.rand(5)  # whatever ran before does not matter
        cb.on_train_batch_start(SimpleNamespace(global_step=4, global_rank=1), None, None, 0)
        draws.append(torch.rand(3))
    assert torch.equal(draws[0], draws[1])


def test_alignment_maps_with_the_frozen_tower_cast_to_bf16(module_kwargs: dict) -> None:
    # encoder.cast_frozen_bf16 stores the frozen tower in bf16 (fit/test start on a GPU); the heatmap callback then
    # runs the model outside the trainer's autocast context, so bf16 tokens meet the fp32 adapter.
    module = ALTModule(class_names=["a b", "c d", "e f"], **module_kwargs)
    module.model.encoder.cast_frozen_(torch.bfloat16)
    video = torch.randn(1, 2, 3, 64, 64)
    out, entity, _conf = alignment_maps(module, video)
    assert out.logits.shape == (1, 3)
    assert entity.shape == (1, 2, 4, 4)
