"""`alt predict VIDEO --labels ...`: top-k classes and the entities that explain them, with and without a checkpoint."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alt_lightning.cli import main
from alt_lightning.commands.predict import (
    _video_dataset,
    build_model,
    build_parser,
    is_video_predict,
    parse_labels,
    png_names,
    predict_videos,
)
from alt_lightning.data.synthetic import ClassSpec, render_clip, write_video

REPO = Path(__file__).resolve().parents[1]
LABELS = "red square moving right,green disc moving up,blue triangle moving down"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("predict") / "red_right.mp4"
    return write_video(path, render_clip(ClassSpec("red", "square", "right"), np.random.default_rng(1), 12))


def test_parse_labels(tmp_path: Path) -> None:
    assert parse_labels("a, b ,c") == ["a", "b", "c"]
    assert len(parse_labels("ucf101")) == 101
    f = tmp_path / "labels.txt"
    f.write_text("riding a bike\nplaying guitar\n")
    assert parse_labels(str(f)) == ["riding a bike", "playing guitar"]
    with pytest.raises(ValueError, match="at least two"):
        parse_labels("missing_file.txt")
    with pytest.raises(ValueError, match="duplicate"):
        parse_labels("a,b,a")


def test_cli_dispatch_between_video_predict_and_lightning_predict() -> None:
    assert is_video_predict(["clip.mp4", "--labels", "a,b"])
    assert is_video_predict(["--labels", "a,b", "--videos", "clip.mp4"])
    assert not is_video_predict(["--config", "fit.yaml", "--ckpt_path", "x.ckpt"])
    assert is_video_predict(["--labels", "a,b", "--help"])  # help of the video command
    assert not is_video_predict([])


def test_video_predict_detected_with_the_checkpoint_before_the_video() -> None:
    # `alt predict --ckpt X.ckpt clip.mp4` (labels from the checkpoint) is the per-video command, not LightningCLI's.
    assert is_video_predict(["--ckpt", "x.ckpt", "clip.mp4"])
    assert is_video_predict(["--ckpt=x.ckpt", "clip.mp4"])
    assert not is_video_predict(["--config", "fit.yaml", "--ckpt_path", "x.ckpt"])


def _zero_shot_args(weights: Path, corpus: Path, **kw) -> Namespace:
    base = {"ckpt": None, "config": None, "model_name": "alt-tiny", "pretrained": str(weights), "corpus": str(corpus)}
    return Namespace(**{**base, "r": 2, **kw})


def test_zero_shot_is_clip_on_the_mean_frame_embedding(
    video: Path, tiny_weights: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    labels = parse_labels(LABELS)
    model, _ = build_model(_zero_shot_args(tiny_weights, tiny_corpus), labels)
    (pred,) = predict_videos(model, [str(video)], num_frames=4, topk=3, png_dir=tmp_path)
    # Reference: CLIP's zero-shot classifier on the same frames (mean of the frames' cls embeddings).
    ds_item = _video_dataset([str(video)], model, 4, 1)[0]
    with torch.no_grad():
        tokens, _, _ = model.model.encode_frames(ds_item["video"][None])  # [1, T, 1+R, C]
        z = F.normalize(tokens[:, :, 0].mean(1), dim=-1)  # [1, C]
        probs = (model.model.classifier.log_scale.exp() * z @ model.model.classifier.class_embeddings.T).softmax(-1)[0]
    expected = sorted(zip(labels, probs.tolist(), strict=True), key=lambda x: -x[1])
    assert [p.label for p in pred.top] == [e[0] for e in expected]
    assert [p.score for p in pred.top] == pytest.approx([e[1] for e in expected], abs=1e-5)
    assert sum(e.share for e in pred.evidence) == pytest.approx(1.0)  # every patch of every frame is explained
    assert all(0 < e.confidence <= 1 for e in pred.evidence)
    png = Path(pred.png)
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_views_of_a_video_are_decoded_in_one_pass_with_the_same_scores(
    video: Path, tiny_weights: Path, tiny_corpus: Path, video_opens: list[str]
) -> None:
    opens = video_opens
    model, _ = build_model(_zero_shot_args(tiny_weights, tiny_corpus), parse_labels(LABELS))
    (pred,) = predict_videos(model, [str(video)], num_frames=4, clips=3, topk=3)
    assert opens == [str(video)]  # one open for the 3 views
    # Reference: the mean of the 3 views' probabilities, each view decoded alone (one open per view).
    ds = _video_dataset([str(video)], model, 4, 3)
    with torch.no_grad():
        probs = model(torch.stack([ds[v]["video"] for v in range(3)])).logits.float().softmax(-1).mean(0)
    assert len(opens) == 4
    assert [p.score for p in pred.top] == pytest.approx(sorted(probs.tolist(), reverse=True), abs=1e-5)


def test_predict_command_with_and_without_checkpoint(
    video: Path, synthetic_root: Path, tiny_weights: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the terminal width
    common = ["--model_name", "alt-tiny", "--pretrained", str(tiny_weights), "--corpus", str(tiny_corpus)]
    out = tmp_path / "zs.json"
    args = ["predict", str(video), "--labels", LABELS, *common, "--r", "2", "--num_frames", "4", "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "zero-shot from the backbone alone" in text and "red square moving right" in text
    (zs,) = json.loads(out.read_text())
    assert len(zs["top"]) == 3 and zs["top"][0]["score"] >= zs["top"][1]["score"] >= zs["top"][2]["score"]

    fit = [
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        f"--data.init_args.root={synthetic_root}",
        "--data.init_args.num_workers=0",
        "--data.init_args.num_frames=4",
        f"--model.init_args.pretrained={tiny_weights}",
        f"--model.init_args.corpus={tiny_corpus}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(fit) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    out = tmp_path / "ckpt.json"
    assert main(["predict", "--videos", str(video), "--ckpt", str(ckpt), "--topk", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"checkpoint {ckpt}" in text and "4 labels, 4 frames" in text  # frames restored from the checkpoint
    (pred,) = json.loads(out.read_text())
    tiny_classes = (synthetic_root / "classes.txt").read_text().splitlines()
    assert len(pred["top"]) == 2 and {p["label"] for p in pred["top"]} <= set(tiny_classes)
    for p in pred["top"]:
        for e in p["entities"]:
            assert e["relevance"] > 0 and e["name"] in {x["name"] for x in pred["evidence"]}
    # The same checkpoint on a new label list: zero-shot class swap.
    assert main(["predict", str(video), "--ckpt", str(ckpt), "--labels", LABELS, "--json", str(out)]) == 0
    assert {p["label"] for p in json.loads(out.read_text())[0]["top"]} == set(parse_labels(LABELS))


def test_model_and_frames_from_composed_configs(tiny_weights: Path, tiny_corpus: Path) -> None:
    """--config pieces as for alt fit: model settings from the model piece, frames from the few-shot experiment."""
    pieces = ("model/tiny.yaml", "data/ucf101.yaml", "experiments/few_shot_ucf101.yaml")
    configs = [str(REPO / "configs" / p) for p in pieces]
    args = _zero_shot_args(tiny_weights, tiny_corpus, model_name=None, config=configs, r=None)
    model, data = build_model(args, ["a", "b"])
    assert data["num_frames"] == 32 and data["test_clips"] == 1
    assert model.hparams.model_name == "alt-tiny" and model.hparams.encoder["r"] == 2
    assert model.model.adapter.gamma.item() == 0.0  # no checkpoint: CLIP's own classifier


def test_png_names_stay_unique_when_inputs_share_a_stem_or_a_name() -> None:
    assert png_names(["clip.mp4", "x/test.avi", "x/test.mp4"]) == ["clip.png", "test.avi.png", "test.mp4.png"]
    assert png_names(["a/test.mp4", "b/test.mp4", "c/other.mp4"]) == ["test.mp4-1.png", "test.mp4-2.png", "other.png"]
    # A generated name that is another input's plain name is not reused; nor is a name differing only in case.
    assert png_names(["test.avi", "test.mp4", "test.avi.mp4"]) == ["test.avi-1.png", "test.mp4.png", "test.avi.png"]
    assert png_names(["Clip.mp4", "clip.avi"]) == ["Clip.mp4.png", "clip.avi.png"]


def test_a_bad_video_gets_one_line_and_the_others_keep_their_results(
    video: Path, tiny_weights: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    clip = render_clip(ClassSpec("green", "disc", "up"), np.random.default_rng(2), 12)
    avi = write_video(tmp_path / "c" / "test.avi", clip, codec="mpeg4")  # same stem as the next one
    mp4 = write_video(tmp_path / "c" / "test.mp4", clip[::-1].copy())
    gone = tmp_path / "gone.mp4"
    inputs = [str(video), str(broken), str(avi), str(gone), str(mp4)]
    out, png_dir = tmp_path / "out.json", tmp_path / "png"
    common = ["--model_name", "alt-tiny", "--pretrained", str(tiny_weights), "--corpus", str(tiny_corpus)]
    args = ["predict", *inputs, "--labels", LABELS, *common, "--r", "2", "--num_frames", "4"]
    assert main([*args, "--json", str(out), "--png-dir", str(png_dir)]) == 1  # some videos failed
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    failures = [line for line in captured.err.splitlines() if line.strip()]
    assert failures[:2] == [f"{broken}: undecodable", f"{gone}: missing file"]
    assert failures[2:] == ["2 of 5 videos could not be read (named above); the others' results are written"]
    for good in (video, avi, mp4):
        assert str(good) in captured.out  # its table
    results = json.loads(out.read_text())
    assert [r["path"] for r in results] == inputs  # every input accounted for, in order
    assert [r["error"] for r in results] == [None, "undecodable", None, "missing file", None]
    assert [len(r["top"]) for r in results] == [3, 0, 3, 0, 3]
    pngs = [r["png"] for r in results]
    assert [Path(p).name if p else None for p in pngs] == ["red_right.png", None, "test.avi.png", None, "test.mp4.png"]
    assert sorted(p.name for p in png_dir.iterdir()) == ["red_right.png", "test.avi.png", "test.mp4.png"]
    assert Path(pngs[2]).read_bytes() != Path(pngs[4]).read_bytes()  # two images, not one overwritten
    assert "exit status" in build_parser().format_help()


def test_r_given_on_the_command_line_overrides_the_checkpoint(module_kwargs: dict, tmp_path) -> None:
    # `alt predict clip.mp4 --ckpt X --r 1` silently ran with the checkpoint's r.
    import lightning
    from alt_lightning.lightning.module import ALTModule

    module = ALTModule(class_names=["a b", "c d", "e f"], **module_kwargs)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    module.on_save_checkpoint(ckpt)
    path = tmp_path / "x.ckpt"
    torch.save(ckpt, path)
    args = Namespace(ckpt=str(path), config=None, model_name=None, pretrained=None, corpus=None, r=None)
    model, _ = build_model(args, None)
    assert model.model.encoder.r_per_layer == [2, 2]
    model, _ = build_model(Namespace(**{**vars(args), "r": 1}), None)
    assert model.model.encoder.r_per_layer == [1, 1]
    assert model.class_names == ["a b", "c d", "e f"]
