"""VideoDataset with bad videos mixed in: training redraws (epoch length unchanged), evaluation counts failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.parsers import missing_reason, parse_path_label_list
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.lightning.module import aggregate_views

#: file name -> reason the bad-file log must give.
BAD_REASONS = {
    "empty.mp4": "empty file",
    "garbage.mp4": "undecodable",
    "audio.wav": "no video stream",
    "zero.avi": "zero frames",
    "half.mp4": "undecodable",  # mp4 cut in half: its index (moov atom, at the end) is gone
    "missing.mp4": "missing file",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, vt) -> dict[str, Path]:
    """One file per kind of damage, plus a truncated mp4 that still decodes (``clamped.mp4``)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    vt.write_audio(d / "audio.wav")
    with av.open(str(d / "zero.avi"), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    full = vt.write_video(d / "full.mp4", 40).read_bytes()
    (d / "half.mp4").write_bytes(full[: len(full) // 2])
    # moov atom first: the header still promises 60 frames after the cut, the tail is gone.
    fast = vt.write_video(d / "fast.mp4", 60, noise_seed=1, container_options={"movflags": "faststart"}).read_bytes()
    (d / "clamped.mp4").write_bytes(fast[: len(fast) // 2])
    paths = {name: d / name for name in [*BAD_REASONS, "clamped.mp4"]}
    return paths


def _records(synthetic_root: Path, bad_files: dict[str, Path], n_good: int) -> tuple[list[VideoRecord], set[str]]:
    good = parse_path_label_list(synthetic_root / "train.txt", root=synthetic_root)[:n_good]
    bad = [VideoRecord(str(p), 0, name) for name, p in bad_files.items()]
    # Interleave, so bad videos sit between good ones as in a real list.
    mixed = [r for pair in zip(good, bad, strict=False) for r in pair] + good[len(bad) :] + bad[len(good) :]
    return mixed, {r.video_id for r in good}


def _dataset(records: list[VideoRecord], log: BadFileLog, *, train: bool, clips: int = 1) -> VideoDataset:
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=train)
    return VideoDataset(records, tf, SamplingConfig(num_frames=4, num_clips=clips), train=train, bad_file_log=log)


@pytest.mark.timeout(60)
def test_training_redraws_bad_videos_and_logs_each_with_its_reason(synthetic_root, bad_files, tmp_path) -> None:
    records, good_ids = _records(synthetic_root, bad_files, n_good=8)
    log = BadFileLog(tmp_path / "bad_videos.csv")
    ds = _dataset(records, log, train=True)
    assert len(ds) == len(records) == 15  # epoch length counts every listed video
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 15 and all(it["ok"] for it in items)
    assert all(it["video"].shape == (4, 3, 32, 32) for it in items)
    # Every undecodable video was replaced by a good one (or by the usable truncated one).
    assert {it["video_id"] for it in items} <= good_ids | {"clamped.mp4"}
    rows = log.rows()
    by_file = {Path(r["path"]).name: r for r in rows if r["action"].startswith("redrawn as")}
    for name, reason in BAD_REASONS.items():
        assert by_file[name]["reason"] == reason, (name, by_file.get(name))
        assert by_file[name]["split"] == "train"
    clamped = [r for r in rows if r["action"] == "clamped"]
    assert [Path(r["path"]).name for r in clamped] == ["clamped.mp4"]
    assert clamped[0]["reason"].startswith("truncated: got")
    # Same seed and epoch, same items: redraws are reproducible.
    again = _dataset(records, BadFileLog(tmp_path / "again.csv"), train=True)
    assert [again[i]["video_id"] for i in range(len(again))] == [it["video_id"] for it in items]


@pytest.mark.timeout(60)
def test_evaluation_counts_failed_videos_and_never_drops_a_good_one(synthetic_root, bad_files, tmp_path) -> None:
    records, good_ids = _records(synthetic_root, bad_files, n_good=5)
    log = BadFileLog(tmp_path / "bad_videos.csv")
    ds = _dataset(records, log, train=False, clips=2)
    assert len(ds) == 2 * len(records)
    loader = DataLoader(ds, batch_size=4, num_workers=2, worker_init_fn=worker_init)
    batches = list(loader)
    index = torch.cat([b["index"] for b in batches])
    view = torch.cat([b["view"] for b in batches])
    ok = torch.cat([b["ok"] for b in batches])
    ids = [v for b in batches for v in b["video_id"]]
    pairs = sorted(zip(index.tolist(), view.tolist(), strict=True))
    assert pairs == [(i, v) for i in range(len(records)) for v in range(2)]  # each (video, view) exactly once
    failed = {vid for vid, good in zip(ids, ok.tolist(), strict=True) if not good}
    assert failed == set(BAD_REASONS)  # the clamped file decodes; the others fail
    assert {vid for vid, good in zip(ids, ok.tolist(), strict=True) if good} == good_ids | {"clamped.mp4"}
    labels = torch.tensor([records[i].label for i in index.tolist()])
    probs = torch.rand(len(index), 4)
    result = aggregate_views(index, labels, ok, probs)
    assert result["num_videos"] == len(records) and result["num_failed"] == len(BAD_REASONS)
    assert result["label"].numel() == len(records) - len(BAD_REASONS)
    rows = log.rows()  # written from two worker processes
    failed_rows = [r for r in rows if r["action"].startswith("failed")]
    assert len(failed_rows) == 2 * len(BAD_REASONS)  # one per view
    assert {(Path(r["path"]).name, r["reason"]) for r in failed_rows} == set(BAD_REASONS.items())


def test_dataset_passes_decode_threads_and_refuses_an_empty_split(synthetic_root) -> None:
    records = parse_path_label_list(synthetic_root / "val.txt", root=synthetic_root)
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    ds = VideoDataset(records, tf, SamplingConfig(num_frames=4), train=False, decode_threads=1)
    assert ds.decode_threads == 1 and ds[0]["ok"]
    with pytest.raises(ValueError, match="has no videos"):
        VideoDataset([], tf, SamplingConfig(), train=False, split="val")


def test_training_gives_up_with_a_clear_error_when_everything_is_bad(bad_files, tmp_path) -> None:
    records = [VideoRecord(str(bad_files["garbage.mp4"]), 0, "g"), VideoRecord(str(bad_files["empty.mp4"]), 0, "e")]
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=True)
    ds = VideoDataset(records, tf, SamplingConfig(num_frames=4), train=True, max_redraws=3)
    with pytest.raises(RuntimeError, match=r"4 videos in a row failed.*alt check-data"):
        ds[0]


@pytest.mark.timeout(120)
def test_unreadable_videos_are_logged_with_the_os_message_not_as_missing(synthetic_root, tmp_path, unprivileged):
    """bad_videos.csv of a DataModule: dropped at the start (folder not enterable) or failed at decoding (no read)."""
    root = tmp_path / "data"
    (root / "v").mkdir(parents=True)
    (root / "locked").mkdir()
    good = sorted((synthetic_root / "videos").rglob("*.mp4"))[0]
    for rel in ("v/ok.mp4", "v/sealed.mp4", "locked/inside.mp4"):
        shutil.copy(good, root / rel)  # copies: chmod must not reach the shared file
    (root / "val.txt").write_text("v/ok.mp4 0\nv/sealed.mp4 1\nlocked/inside.mp4 0\nv/gone.mp4 1\n")
    (root / "classes.txt").write_text("a\nb\n")
    unprivileged.deny(root / "v" / "sealed.mp4", 0)  # exists, no read permission
    unprivileged.deny(root / "locked", 0o600)  # no execute: isfile() says False inside
    code = (
        "import json, sys\n"
        "from alt_lightning.datamodules import VideoListDataModule\n"
        "dm = VideoListDataModule(sys.argv[1], classes='classes.txt', num_frames=4, num_workers=0,\n"
        "                         bad_file_log=sys.argv[2])\n"
        "ds = dm.dataset('val')\n"
        "ok = {r.video_id: ds[i]['ok'] for i, r in enumerate(ds.records)}\n"
        "print(json.dumps({'ok': ok, 'rows': dm.bad_file_log().rows()}))\n"
    )
    res = unprivileged.run("-c", code, str(root), str(tmp_path / "bad_videos.csv"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ok"] == {"v/ok.mp4": True, "v/sealed.mp4": False}  # the sealed file is counted as failed, not dropped
    rows = [(Path(r["path"]).name, r["reason"], r["action"]) for r in out["rows"]]
    assert rows == [
        ("inside.mp4", "unreadable (Permission denied)", "dropped (missing)"),
        ("gone.mp4", "missing file", "dropped (missing)"),
        ("sealed.mp4", "unreadable (Permission denied)", "failed (view 0)"),
    ]
    # The warning says which: a mount/permission problem, not a download to redo.
    summary = "val: 2 of 4 videos are missing or unreadable (1 unreadable (Permission denied), 1 missing file)"
    assert summary in res.stderr


def test_missing_reason_tells_missing_from_unreadable(tmp_path, unprivileged) -> None:
    for name in ("closed", "unlisted"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "clip.mp4").write_bytes(b"x")
    unprivileged.deny(tmp_path / "closed", 0o600)  # no execute: the file cannot be reached
    unprivileged.deny(tmp_path / "unlisted", 0o300)  # no read: reachable, but a folder listing misses it
    paths = [tmp_path / "closed" / "clip.mp4", tmp_path / "unlisted" / "clip.mp4", tmp_path / "gone.mp4", tmp_path]
    code = "import json, sys\nfrom alt_lightning.data.parsers import missing_reason\n"
    code += "print(json.dumps([missing_reason(p) for p in sys.argv[1:]]))"
    res = unprivileged.run("-c", code, *map(str, paths))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        "unreadable (Permission denied)",
        "unreadable folder (Permission denied)",
        "missing file",
        "not a file",
    ]
    assert missing_reason(tmp_path / "gone.mp4") == "missing file"  # in-process too, as root or not


def test_training_item_randomness_follows_the_epoch_its_index_carries(synthetic_root, tmp_path) -> None:
    """In a worker the dataset's own epoch is that of its pickled copy; an EpochIndex brings the sampler's."""
    from alt_lightning.datamodules.samplers import EpochIndex

    records = parse_path_label_list(synthetic_root / "train.txt", root=synthetic_root)[:3]
    ds = _dataset(records, BadFileLog(tmp_path / "bad_videos.csv"), train=True)
    ds.set_epoch(5)
    at_5 = [ds[i]["video"] for i in range(3)]
    ds.set_epoch(0)
    carried = [ds[EpochIndex(i, 5)]["video"] for i in range(3)]
    plain = [ds[i]["video"] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(at_5, carried, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(at_5, plain, strict=True))
