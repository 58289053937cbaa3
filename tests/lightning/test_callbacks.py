"""Default callbacks: per-video prediction files, throughput, alignment heatmaps in TensorBoard."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from alt_lightning.data.records import VideoRecord
from alt_lightning.explain import alignment_maps
from alt_lightning.lightning import ALTModule
from alt_lightning.lightning.callbacks import (
    AlignmentHeatmapLogger,
    PredictionWriter,
    StepSeed,
    ThroughputMonitor,
    image_tag,
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
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    # Each image is tagged with its video and label (the validation loader's first clips), and titled.
    first = next(iter(dm.val_dataloader()))
    names = [(str(v), dm.class_names[int(y)]) for v, y in zip(first["video_id"][:2], first["label"][:2], strict=True)]
    expected = ["alignment/" + re.sub(r"[^-\w.]", "_", f"{i}_{v}_{y}") for i, (v, y) in enumerate(names)]
    assert heatmaps.tags == expected and set(expected) <= set(events.Tags()["images"])
    for tag, (video_id, label) in zip(expected, names, strict=True):
        (text,) = events.Tensors(f"{tag}_legend/text_summary")  # add_text appends /text_summary
        body = text.tensor_proto.string_val[0].decode()
        assert body.startswith(f"**{video_id}: label {label!r}, predicted ") and "epoch 1**" in body
        assert "frames 1, 3, 4 of the 4 sampled" in body and "% (" in body  # caption, legend
    assert image_tag(0, "a/b c", "riding a bike") == "alignment/0_a_b_c_riding_a_bike"
    assert "perf/clips_per_s" in events.Tags()["scalars"]


def test_heatmaps_draw_distinct_videos_from_a_batch_of_whole_videos(synthetic_root: Path, tmp_path: Path) -> None:
    """Evaluation batches hold every view of each video: the callback draws one clip (the first view) per video."""
    from types import SimpleNamespace

    from alt_lightning.datamodules import VideoListDataModule

    dm = VideoListDataModule(
        root=str(synthetic_root), classes="classes.txt", test_list="test.txt", num_frames=4, batch_size=7,
        num_workers=0, flip=0.0, val_clips=3, pin_memory=False, bad_file_log=str(tmp_path / "bad.csv"),
    )  # fmt: skip
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["index"].tolist() == [0, 0, 0, 1, 1, 1] and batch["view"].tolist() == [0, 1, 2] * 2  # 7 -> 6
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True)
    for num_videos, rows in ((2, [0, 3]), (1, [0]), (5, [0, 3])):  # never more videos than the batch holds
        heatmaps = AlignmentHeatmapLogger(every_n_epochs=1, num_videos=num_videos)
        heatmaps.on_validation_batch_end(trainer, None, None, batch, 0)
        assert heatmaps._video_ids == [batch["video_id"][r] for r in rows]
        assert heatmaps._labels == [int(batch["label"][r]) for r in rows]
        assert torch.equal(heatmaps._video, batch["video"][rows])


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
