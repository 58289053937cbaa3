"""``alt export``: the head as safetensors + config + model card, loaded back by alt test, alt predict, init_weights.

The exported weights are read here by an independent parser of the safetensors format (8-byte little-endian header
length, a JSON header of dtype/shape/data_offsets, raw little-endian data), not by the safetensors library.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from alt_lightning.cli import main

REPO = Path(__file__).resolve().parents[2]

#: safetensors dtype names -> numpy little-endian dtypes (those a head can hold).
SAFETENSORS_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "BOOL": "?", "U8": "u1"}


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, parsed with struct/json/numpy only."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    end = 0
    for name, entry in header.items():
        begin, stop = entry["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
        array = np.frombuffer(data[begin:stop], dtype=dtype)
        assert array.size == int(np.prod(entry["shape"], dtype=np.int64)), name
        tensors[name] = array.reshape(entry["shape"])
        end = max(end, stop)
    assert end == len(data)  # every byte after the header belongs to a tensor
    return tensors, metadata


def front_matter(text: str) -> dict:
    """The YAML between the first two ``---`` lines of a model card."""
    lines = text.splitlines()
    assert lines[0] == "---"
    close = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:close]))


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(synthetic_root: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One epoch (1 batch) of the demo config with its CSV logger, exported: the checkpoint, the folder, the output."""
    tmp = tmp_path_factory.mktemp("export_fit")
    args = [
        "--config", str(REPO / "configs" / "demo.yaml"), f"--data.init_args.root={synthetic_root}",
        "--data.init_args.num_workers=0", "--data.init_args.batch_size=8", "--data.init_args.num_frames=4",
        f"--model.init_args.corpus={tiny_corpus}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    old = Path.cwd()
    os.chdir(tmp)
    try:
        assert main(["fit", *args]) == 0
        ckpt = next(tmp.rglob("best.ckpt"))
        code, out, err = _run(["export", str(ckpt), str(tmp / "head")])
    finally:
        os.chdir(old)
    assert code == 0, err
    return {"ckpt": ckpt, "head": tmp / "head", "out": out, "tmp": tmp}


def test_export_writes_the_trainable_weights_and_reports_their_size(run: dict) -> None:
    saved = torch.load(run["ckpt"], weights_only=True, map_location="cpu")
    tensors, metadata = read_safetensors(run["head"] / "model.safetensors")
    assert metadata.get("format") == "pt"
    assert list(tensors) == sorted(saved["state_dict"])  # safetensors orders the header by name
    for name, array in tensors.items():
        expected = saved["state_dict"][name].numpy()
        assert array.shape == expected.shape and array.dtype == expected.dtype, name
        assert np.array_equal(array, expected), name
    # Only the head: no frozen backbone tensor (the checkpoint drops them; the export must not bring any back).
    assert not any("visual." in n or "backbone" in n or n.startswith("model.encoder.") for n in tensors)
    assert all(n.startswith("model.adapter.") for n in tensors)
    # The printed figures, against the file itself.
    size = (run["head"] / "model.safetensors").stat().st_size
    params = sum(a.size for a in tensors.values())
    m = re.search(r": (\d+) tensors, ([\d,]+) parameters, ([\d.]+) MB \(([\d,]+) bytes\)", run["out"])
    assert m, run["out"]
    assert int(m[1]) == len(tensors) == 31
    assert int(m[2].replace(",", "")) == params
    assert float(m[3]) == round(size / 1e6, 3) and int(m[4].replace(",", "")) == size
    assert size < 400_000  # the tiny head: ~72k float32 parameters, not the backbone's
    card = json.loads((run["head"] / "model_card.json").read_text())
    assert card["weights"]["tensors"] == len(tensors) and card["weights"]["bytes"] == size


def test_config_and_model_card_name_backbone_corpus_classes_and_metrics(run: dict) -> None:
    saved = torch.load(run["ckpt"], weights_only=True, map_location="cpu")
    alt = saved["alt"]
    config = json.loads((run["head"] / "config.json").read_text())
    assert config["backbone"] == {
        "model_name": "alt-tiny",
        "pretrained": None,
        "fingerprint": alt["backbone_fingerprint"],
    }
    assert config["corpus"]["hash"] == alt["corpus"]["hash"] and config["corpus"]["name"] == "tiny-test"
    assert config["class_names"] == alt["class_names"] and len(config["class_names"]) == 4
    assert config["model"]["init_args"]["num_frames"] == 4
    assert config["model"]["init_args"]["prompt_templates"] == "single"

    text = (run["head"] / "README.md").read_text()
    meta = front_matter(text)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "alt-lightning"
    assert meta["pipeline_tag"] == "video-classification"
    assert {"video-classification", "action-recognition"} <= set(meta["tags"])
    assert "| classes | 4 |" in text and "## Classes (4)" in text
    listed = re.findall(r"^\d+\. (.+)$", text, flags=re.MULTILINE)
    assert listed == alt["class_names"]
    assert alt["backbone_fingerprint"] in text and alt["corpus"]["hash"] in text

    # Metrics: the run's metrics.csv read here with the csv module, rows of the checkpoint's epoch.
    with (run["ckpt"].parent.parent / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["epoch"] == str(saved["epoch"])]
    val_top1 = [float(r["val/top1"]) for r in rows if r.get("val/top1")][-1]
    card = json.loads((run["head"] / "model_card.json").read_text())
    assert card["num_classes"] == 4
    assert card["metrics"]["logged"]["val/top1"] == pytest.approx(val_top1)
    assert card["metrics"]["monitor"]["name"] == "val/top1"
    assert card["metrics"]["monitor"]["value"] == pytest.approx(val_top1)
    assert f"`val/top1`: {100 * val_top1:.2f}%" in text


def test_a_checkpoint_without_recorded_metrics_says_so(run: dict, tmp_path: Path) -> None:
    saved = torch.load(run["ckpt"], weights_only=True, map_location="cpu")
    saved.pop("callbacks")
    bare = tmp_path / "bare.ckpt"  # not in a run folder: no metrics.csv beside it
    torch.save(saved, bare)
    code, _, err = _run(["export", str(bare), str(tmp_path / "head")])
    assert code == 0, err
    assert json.loads((tmp_path / "head" / "model_card.json").read_text())["metrics"] == {}
    assert "Not recorded" in (tmp_path / "head" / "README.md").read_text()
    # An earlier export is not overwritten silently; a folder is not exported again.
    code, _, err = _run(["export", str(bare), str(tmp_path / "head")])
    assert code == 1 and "--force" in err and "model.safetensors" in err and err.count("\n") == 1
    assert _run(["export", str(bare), str(tmp_path / "head"), "--force"])[0] == 0
    code, _, err = _run(["export", str(tmp_path / "head"), str(tmp_path / "again")])
    assert code == 1 and "is a folder" in err


def _test_cli(ckpt: Path, *extra: str):
    from alt_lightning.lightning.cli import run_cli

    args = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    return run_cli(["test", f"--ckpt_path={ckpt}", *args, "--data.init_args.num_workers=0", *extra])


def test_alt_test_from_the_folder_equals_the_checkpoint(run: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    from_ckpt = _test_cli(run["ckpt"])
    from_head = _test_cli(run["head"])
    a, b = from_ckpt.model.last_eval, from_head.model.last_eval
    assert torch.equal(a["index"], b["index"]) and a["probs"].shape == (12, 4)
    assert torch.allclose(a["probs"], b["probs"], atol=1e-6, rtol=0)
    for key in ("test/top1", "test/top5", "test/mean_class", "test/videos_evaluated"):
        assert float(from_ckpt.trainer.callback_metrics[key]) == float(from_head.trainer.callback_metrics[key]), key
    # The folder's weights are the ones tested (Lightning's strict restore), not a fresh head.
    saved = torch.load(run["ckpt"], weights_only=True, map_location="cpu")["state_dict"]
    state = from_head.model.state_dict()
    assert all(torch.equal(state[k].cpu(), v) for k, v in saved.items())


def test_alt_predict_and_init_weights_from_the_folder_equal_the_checkpoint(
    run: dict, synthetic_root: Path, tmp_path: Path
) -> None:
    from alt_lightning.commands.predict import build_model, build_parser
    from alt_lightning.lightning.checkpoints import read_checkpoint
    from alt_lightning.lightning.module import ALTModule

    video = str(sorted((synthetic_root / "videos").rglob("*.mp4"))[0])
    torch.manual_seed(0)
    clip = torch.randn(2, 4, 3, 64, 64)  # [V, T, 3, S, S]: the tiny backbone's input size
    logits = []
    for source in (run["ckpt"], run["head"]):
        model, data = build_model(build_parser().parse_args([video, "--ckpt", str(source)]), None)
        assert data["num_frames"] == 4 and model.class_names == read_checkpoint(run["ckpt"]).class_names
        with torch.no_grad():
            logits.append(model(clip).logits)
    assert torch.allclose(logits[0], logits[1], atol=1e-6, rtol=0)
    results = []
    for source in (run["ckpt"], run["head"]):
        out = tmp_path / f"{Path(source).name}.json"
        assert _run(["predict", video, "--ckpt", str(source), "--json", str(out)])[0] == 0
        results.append(json.loads(out.read_text())[0]["top"])
    assert [p["label"] for p in results[0]] == [p["label"] for p in results[1]]
    assert np.allclose([p["score"] for p in results[0]], [p["score"] for p in results[1]], atol=1e-6, rtol=0)
    # model.init_args.init_weights: the same trainable weights from either.
    saved = read_checkpoint(run["ckpt"])
    args = {k: v for k, v in saved.model_args.items() if k != "init_weights"}
    states = [ALTModule(**args, init_weights=str(source)).state_dict() for source in (run["ckpt"], run["head"])]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value.code)
    assert "\n" not in message, message
    return message


def test_mismatches_are_refused_as_for_the_checkpoint(run: dict, tmp_path: Path, monkeypatch) -> None:
    from alt_lightning.model.build import load_clip

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other_weights.pt"
    torch.save(load_clip("alt-tiny", seed=1).state_dict(), other)
    messages = []
    for source in (run["ckpt"], run["head"]):
        base = ["test", f"--ckpt_path={source}", "--trainer.logger=false", "--data.init_args.num_workers=0"]
        with pytest.raises(SystemExit) as err:
            main([*base, f"--model.init_args.pretrained={other}"])
        messages.append(_one_line(err).replace(str(source), "SOURCE"))
        code, _, stderr = _run(["predict", str(other), "--ckpt", str(source), "--pretrained", str(other)])
        assert code == 2 and stderr.count("\n") == 1
        test_message = messages[-1].removeprefix("error: alt test: ")
        assert stderr.strip().replace(str(source), "SOURCE") == f"error: alt predict: {test_message}"
    assert messages[0] == messages[1] and "fingerprint" in messages[0], messages


def test_corpus_mismatch_warns_as_for_the_checkpoint(run: dict, tiny_corpus: Path, tmp_path: Path) -> None:
    from alt_lightning.lightning.checkpoints import read_checkpoint
    from alt_lightning.lightning.module import ALTModule
    from alt_lightning.text.corpus import load_corpus, write_corpus

    corpus = load_corpus(tiny_corpus)
    smaller = type(corpus)(name=corpus.name, version="0.0.2", records=corpus.records[:-1], description="Smaller.")
    other = write_corpus(smaller, tmp_path / "c.jsonl")
    args = {k: v for k, v in read_checkpoint(run["ckpt"]).model_args.items() if k != "init_weights"}
    messages = []
    for source in (run["ckpt"], run["head"]):
        with pytest.warns(UserWarning, match="differs from the loaded corpus") as record:
            ALTModule(**{**args, "corpus": str(other)}, init_weights=str(source))
        messages.append([str(w.message) for w in record if "differs from the loaded corpus" in str(w.message)])
    assert messages[0] == messages[1] and len(messages[0]) == 1 and "0.0.2" in messages[0][0]


def test_incomplete_folders_and_resuming_from_a_folder_are_one_line_errors(run: dict, tmp_path: Path) -> None:
    for missing in ("model.safetensors", "config.json"):
        folder = tmp_path / f"without_{missing}"
        shutil.copytree(run["head"], folder)
        (folder / missing).unlink()
        with pytest.raises(SystemExit) as err:
            main(["test", f"--ckpt_path={folder}", "--trainer.logger=false"])
        message = _one_line(err)
        assert f"without {missing}" in message and "alt export" in message, message
        video = str(run["ckpt"])  # an existing file: the model is refused before any video is read
        code, _, stderr = _run(["predict", video, "--ckpt", str(folder)])
        assert code == 2 and f"without {missing}" in stderr and stderr.count("\n") == 1, stderr
    with pytest.raises(SystemExit) as err:
        main(["fit", f"--ckpt_path={run['head']}"])
    assert "--model.init_args.init_weights" in _one_line(err)


def test_protocol_records_the_hash_of_an_exported_folder(run: dict) -> None:
    """`alt protocol zero-shot --ckpt OUT/` records a sha256 of the folder: its config's then its weights' bytes."""
    import hashlib

    from alt_lightning.protocols.runner import file_sha256

    expected = hashlib.sha256(
        (run["head"] / "config.json").read_bytes() + (run["head"] / "model.safetensors").read_bytes()
    ).hexdigest()
    assert file_sha256(run["head"]) == expected
    assert file_sha256(run["ckpt"]) == hashlib.sha256(run["ckpt"].read_bytes()).hexdigest()
