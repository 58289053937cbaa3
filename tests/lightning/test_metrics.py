"""Evaluation metrics and helpers (``lightning/metrics.py``), against by-hand numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from alt_lightning.lightning.metrics import (
    MeanClassAccuracy,
    aggregate_views,
    count_videos,
    gather_variable,
    video_metrics,
)


def test_mean_class_leaves_out_classes_without_samples() -> None:
    # 4 classes; class 3 has no sample but is predicted once. Recall: class 0 1/2, class 1 1/1, class 2 0/2.
    target = torch.tensor([0, 0, 1, 2, 2])
    predicted = torch.tensor([0, 3, 1, 1, 0])
    preds = torch.nn.functional.one_hot(predicted, 4).float()
    metric = MeanClassAccuracy(4)
    metric.update(preds, target)
    assert float(metric.compute()) == pytest.approx(np.mean([1 / 2, 1, 0]))
    # torchmetrics' macro average counts the predicted-but-absent class 3 as recall 0 (what we avoid).
    macro = MulticlassAccuracy(4, average="macro")(preds, target)
    assert float(macro) == pytest.approx(np.mean([1 / 2, 1, 0, 0]))
    empty = MeanClassAccuracy(4)
    empty.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert float(empty.compute()) == 0.0  # no class present


def test_video_metrics_are_micro_top1_top5_and_mean_class() -> None:
    probs = torch.tensor([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0], [0.1, 0.2, 0.3, 0.15, 0.15, 0.05, 0.05]])
    target = torch.tensor([0, 6])  # video 1's class 6 is ranked last: not in its top 5
    metrics = video_metrics(7)
    metrics.update(probs, target)
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert values == pytest.approx({"top1": 0.5, "top5": 0.5, "mean_class": 0.5})
    assert video_metrics(3)["top5"].top_k == 3  # fewer than five classes


def test_aggregate_views_averages_the_decoded_views_of_each_video() -> None:
    # Videos 7, 3, 5 with two views each; video 5 has no decoded view, video 3 only its second.
    index = torch.tensor([7, 3, 5, 7, 3, 5])
    label = torch.tensor([1, 0, 1, 1, 0, 1])
    ok = torch.tensor([True, False, False, True, True, False])
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    result = aggregate_views(index, label, ok, probs)
    assert result["index"].tolist() == [3, 7] and result["label"].tolist() == [0, 1]
    assert torch.allclose(result["probs"], torch.tensor([[0.3, 0.7], [0.4, 0.6]]))
    assert (result["views"], result["num_videos"], result["num_failed"]) == (2, 3, 1)
    assert result["failed_index"].tolist() == [5]
    with pytest.raises(RuntimeError, match="different numbers of views"):
        aggregate_views(index[:5], label[:5], ok[:5], probs[:5])


def test_count_videos_adds_up() -> None:
    result = {"index": torch.tensor([3, 7]), "failed_index": torch.tensor([5, 9])}
    assert count_videos(result) == {"listed": 4, "evaluated": 2, "failed": 2, "missing": 0, "not_run": 0}
    # The DataModule lists 10; 3 files are missing, one of which (9) was kept for the loader and failed there.
    counts = count_videos(result, (10, 3, {9}))
    assert counts == {"listed": 10, "evaluated": 2, "failed": 1, "missing": 3, "not_run": 4}
    assert sum(v for k, v in counts.items() if k != "listed") == counts["listed"]


def test_gather_variable_without_a_trainer_returns_the_tensor() -> None:
    module = torch.nn.Module()
    module._trainer = None
    x = torch.arange(3)
    assert gather_variable(module, x) is x  # type: ignore[arg-type]
