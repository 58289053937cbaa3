"""Frozen-feature cache: the region encoder's output per (video, view), computed once and memory-mapped.

ALT's backbone is frozen, so the region tokens ``[T, 1+R, C]`` of a view depend only on the backbone weights, the
encoder's merge schedule, the frame sampling, the evaluation transform and the video itself. This module stores
them once, sharded in numpy ``.npy`` files opened with ``mmap_mode="r"``, and serves them as a dataset whose items
look like :class:`~alt_lightning.data.dataset.VideoDataset`'s with ``"tokens"`` in place of ``"video"``.

When the cache is valid: only for views that are the same at every epoch, i.e. **augmentation-free** data:
zero-shot and few-shot evaluation, linear probes, and training where fixed views are acceptable (each training
video is seen through one deterministic view: the evaluation sampling's centre clip and the evaluation transform's
centre crop). It is not valid for training with random crops, flips, colour jitter or random temporal sampling:
those change the frames every epoch, and caching would silently replace them by one fixed view.

Layout of one cache (a folder, written under a temporary name and renamed when complete)::

    <name>/index.json              key, the spec it hashes, shapes, shard table, records, failed items, build info
    <name>/tokens_00000.npy        [rows, T, 1+R, C] float16 (or float32), rows of items in dataset order
    <name>/sizes_00000.npy         [rows, T, 1+R] uint16: patches held by each token
    <name>/assignment_00000.npy    [rows, T, 1+P] int16: the token holding the cls token and each patch (optional;
                                   the ``[1+R, 1+P]`` source map is its one-hot transpose)

Item ``i`` (``record * views + view``, the order of :class:`VideoDataset`) lives in shard ``i // rows_per_shard``,
row ``i % rows_per_shard``. The key is the sha256 of a spec holding the backbone fingerprint, the encoder's merge
schedule and attention options, the sampling, the evaluation transform and a hash of the records (paths, labels,
video ids); any change gives another key, so a stale cache is never read.

Switching it on: the ``features`` option of every DataModule (:class:`FeatureCacheConfig`, e.g.
``features: {dir: cache/features, splits: [test]}``); the cached splits' batches carry ``"tokens"``
``[B, T, 1+R, C]`` instead of ``"video"`` and the module skips the encoder. A missing cache is built when its
dataloader is first requested (``build="auto"``), by the attached model's ``encode_frames`` on the trainer's device and
precision; under DDP (world size > 1) caches are not built: run ``alt cache build --config ...`` once first (one
process), then every rank reads them. When the key changes another cache is built (``build="auto"``) or the run
stops naming what changed (``build="never"``).

Pure torch/numpy (no Lightning, no model import): the model is reached only through the ``encode`` callable and the
duck-typed encoder that :func:`cache_spec` reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, default_collate

import alt_lightning
from alt_lightning.data.dataset import VideoDataset, worker_init
from alt_lightning.data.records import VideoRecord

log = logging.getLogger(__name__)

#: Bump when what is stored, or how it is computed, changes: older caches then get other keys.
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
#: Storage dtypes. Our choice (paper silent): float16, half the disk of float32; CLIP's joint-space tokens are small
#: (|x| < 100), so the only loss is a relative rounding of 2^-11.
DTYPES = {"float16": np.float16, "float32": np.float32}


#: Splits a cache can serve (``"predict"`` reads the ``"test"`` cache).
SPLITS = ("train", "val", "test")


class FeatureCacheError(RuntimeError):
    """A feature cache is missing, stale or unusable; the message says why and what to do."""


@dataclass
class FeatureCacheConfig:
    """The ``features`` option of every DataModule: which splits are read from the frozen-feature cache.

    Valid for augmentation-free splits (evaluation always; training only with fixed views, see the module docstring):
    a cached training split is encoded through the **evaluation** path (centre clip, centre crop, no flip, no colour
    jitter), so every epoch sees the same view. Leave ``"train"`` out for training that relies on augmentation (the
    supervised Kinetics recipe). Needs a frozen backbone (``encoder.trainable_blocks=0``).

    Args:
        dir: Folder of the caches (one sub-folder per dataset, split and key; the shipped configs: ``cache/features``).
            Not ``cache_dir``: that is ALTModule's text-embedding cache.
        splits: Splits served from the cache. Our default: ``("test",)``, always valid (evaluation has no
            augmentation); add ``"val"`` freely, ``"train"`` only for augmentation-free training.
        build: ``"auto"`` builds a missing or stale cache (single process only); ``"never"`` stops with what differs
            from the caches present.
        batch_size: Items per batch read from the cache; ``None`` is the DataModule's ``batch_size``.
        num_workers: DataLoader workers reading the cache. Our choice: 0 (a batch is one read of memory-mapped rows,
            cheaper than a worker's start-up per epoch); raise it for caches larger than memory on slow disks.
        build_batch_size: Clips per encoder call when building; ``None`` is the DataModule's ``batch_size``. Rounded
            down to whole videos (a multiple of the views per video, as evaluation batches), so that each video is
            decoded once for all its views.
        build_workers: Decoding workers when building; ``None`` is the DataModule's ``num_workers``.
        store_source: Also store patch-to-token assignments, served as ``"sizes"``/``"source"`` (region heatmaps).
        dtype: Token storage: ``"float16"`` (our choice: half the disk; relative rounding 2^-11) or ``"float32"``.
        shard_size_mb: Upper bound of one shard file (our choice: 1024).
    """

    dir: str
    splits: tuple[str, ...] = ("test",)
    build: str = "auto"
    batch_size: int | None = None
    num_workers: int = 0
    build_batch_size: int | None = None
    build_workers: int | None = None
    store_source: bool = False
    dtype: str = "float16"
    shard_size_mb: int = 1024

    def __post_init__(self) -> None:
        self.splits = tuple(self.splits)
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"features.splits must be among {SPLITS}, got {unknown}.")
        if self.build not in ("auto", "never"):
            raise ValueError(f"features.build must be 'auto' or 'never', got {self.build!r}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"features.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}.")

    def serves(self, split: str) -> bool:
        """Whether ``split`` (``"predict"``: the test split) is read from the cache."""
        return ("test" if split == "predict" else split) in self.splits


# ------------------------------------------------------------------------------------------------------ keys
def records_digest(records: list[VideoRecord]) -> str:
    """sha256 of the records' ``path``, ``label`` and ``video_id`` in order (what the items are)."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.path}\t{r.label}\t{r.video_id}\n".encode())
    return h.hexdigest()


def cache_spec(
    encoder: Any, backbone_fingerprint: str, dataset: VideoDataset, precision: str = "32-true"
) -> dict[str, Any]:
    """Everything the cached tokens of ``dataset`` depend on (hashed into the cache key).

    Args:
        encoder: The :class:`~alt_lightning.model.region_encoder.RegionEncoder` that encodes the frames.
        backbone_fingerprint: Fingerprint of its frozen weights (``ALTModule.backbone_fingerprint`` or
            :func:`alt_lightning.model.backbone.fingerprint` of ``encoder.visual``).
        dataset: An evaluation-style dataset (deterministic sampling and transform).
        precision: The trainer precision the tokens are computed in (bf16 autocast rounds them differently from
            fp32, so caches of different precisions are kept apart).

    Returns:
        A JSON-ready dict with ``format``, ``backbone``, ``sampling``, ``transform`` and ``records`` entries.

    Raises:
        FeatureCacheError: For a training-mode dataset or transform (random views cannot be cached) or a backbone
            with trainable blocks (its features change while training).
    """
    if dataset.train or getattr(dataset.transform, "train", False):
        raise FeatureCacheError(
            f"The {dataset.split} dataset samples or augments at random (train=True): its views change every "
            "epoch and cannot be cached. Cache an evaluation-style dataset (deterministic sampling, centre crop)."
        )
    if getattr(encoder, "trainable_blocks", 0) != 0:
        raise FeatureCacheError(
            f"encoder.trainable_blocks={encoder.trainable_blocks}: part of the backbone is trained, so its features "
            "change during training and cannot be cached. Use trainable_blocks=0 (the default frozen backbone) or "
            "the decoding DataModule."
        )
    t = dataset.transform
    return {
        "format": FORMAT_VERSION,
        "backbone": {
            "fingerprint": backbone_fingerprint,
            "image_size": list(encoder.image_size),
            "r_schedule": list(encoder.r_schedule),
            "proportional_attention": bool(encoder.proportional_attention),
            "num_tokens": int(encoder.num_tokens()),
            "out_dim": int(encoder.out_dim),
            "precision": str(precision),
        },
        "sampling": asdict(dataset.sampling),
        "transform": {
            "size": int(getattr(t, "size", 0)),
            "mean": [float(x) for x in getattr(t, "mean", ())],
            "std": [float(x) for x in getattr(t, "std", ())],
            "num_crops": int(getattr(t, "num_crops", 1)),
            "interpolation": str(getattr(t, "interpolation", "")),
            "type": type(t).__name__,
        },
        "records": {"count": len(dataset.records), "sha256": records_digest(dataset.records)},
    }


def spec_key(spec: dict[str, Any]) -> str:
    """sha256 of a spec's canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def spec_differences(cached: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two specs, e.g. ``"sampling.num_frames: 8 in the cache, 4 now"``."""
    a, b = _flatten(cached), _flatten(current)
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} in the cache, {b.get(k)!r} now" for k in keys if a.get(k) != b.get(k)]


def cache_name(dataset_name: str, split: str, key: str) -> str:
    """Folder name of a cache: ``<dataset>-<split>-<key[:16]>`` (file-system safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_name) or "data"
    return f"{safe}-{split}-{key[:16]}"


# ----------------------------------------------------------------------------------------------- reading
class FeatureCache:
    """A built cache, read through memory maps (opened lazily, per process: safe with DataLoader workers).

    Args:
        directory: The cache folder (holding ``index.json``).

    Raises:
        FeatureCacheError: No index, or one of another format version.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / INDEX_NAME
        if not path.is_file():
            raise FeatureCacheError(f"{self.directory} holds no feature cache ({INDEX_NAME} is missing).")
        self.index: dict[str, Any] = json.loads(path.read_text())
        if self.index.get("format") != FORMAT_VERSION:
            raise FeatureCacheError(
                f"{path}: cache format {self.index.get('format')} but this version reads {FORMAT_VERSION}; rebuild "
                "it (`alt cache clear` then `alt cache build`, or build='auto')."
            )
        self.ok = np.ones(self.num_items, dtype=bool)  # [items]
        self.ok[np.asarray(self.index["failed_items"], dtype=np.int64)] = False
        self._records: list[VideoRecord] | None = None
        self._arrays: dict[tuple[str, int], np.ndarray] = {}

    # ---------------------------------------------------------------- metadata
    @property
    def key(self) -> str:
        """The full cache key."""
        return str(self.index["key"])

    @property
    def spec(self) -> dict[str, Any]:
        """The spec the key hashes."""
        return dict(self.index["spec"])

    @property
    def split(self) -> str:
        """Split the items come from."""
        return str(self.index["split"])

    @property
    def num_items(self) -> int:
        """Stored (video, view) items."""
        return int(self.index["num_items"])

    @property
    def num_views(self) -> int:
        """Views per video."""
        return int(self.index["num_views"])

    @property
    def token_shape(self) -> tuple[int, int, int]:
        """``(T, 1+R, C)`` of one item."""
        t, n, c = self.index["token_shape"]
        return int(t), int(n), int(c)

    @property
    def has_source(self) -> bool:
        """Whether patch-to-token assignments (source maps) are stored."""
        return bool(self.index["has_source"])

    @property
    def records(self) -> list[VideoRecord]:
        """The videos, in item order (``item // num_views``)."""
        if self._records is None:
            self._records = [VideoRecord(p, int(label), v) for p, label, v in self.index["records"]]
        return self._records

    @property
    def num_failed_videos(self) -> int:
        """Videos with no decodable view."""
        per_video = self.ok.reshape(-1, self.num_views).any(axis=1)
        return int((~per_video).sum())

    def nbytes(self) -> int:
        """Size on disk."""
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    def check(self, spec: dict[str, Any]) -> None:
        """Raise :class:`FeatureCacheError` naming every difference when this cache was built for another spec."""
        if self.key != spec_key(spec):
            diffs = "; ".join(spec_differences(self.spec, spec)) or "key mismatch"
            raise FeatureCacheError(f"The feature cache {self.directory} is stale: {diffs}.")

    # ---------------------------------------------------------------- arrays
    def _array(self, kind: str, shard: int) -> np.ndarray:
        key = (kind, shard)
        if key not in self._arrays:
            name = self.index["shards"][shard][kind]
            if name is None:
                raise FeatureCacheError(f"{self.directory} stores no {kind} (build it with store_source=True).")
            self._arrays[key] = np.load(self.directory / name, mmap_mode="r")
        return self._arrays[key]

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self.num_items:
            raise IndexError(f"item {i} outside the cache's {self.num_items} items")
        return divmod(i, int(self.index["rows_per_shard"]))

    def rows(self, kind: str, items: np.ndarray) -> np.ndarray:
        """Stored rows of ``items`` (``[n]`` item ids, any order), in that order, in the storage dtype.

        Ascending consecutive items of one shard (evaluation's order) are one slice of the memory map, no copy;
        others (a shuffled training batch) are gathered per shard with one indexing call each, never one read per
        row.
        """
        items = np.asarray(items, dtype=np.int64)  # [n]
        if items.size and (items.min() < 0 or items.max() >= self.num_items):
            raise IndexError(f"items {items.min()}..{items.max()} outside the cache's {self.num_items} items")
        shard, row = np.divmod(items, int(self.index["rows_per_shard"]))  # [n], [n]
        first = int(shard[0]) if items.size else 0
        if items.size and bool((shard == first).all()) and bool((np.diff(row) == 1).all()):
            return self._array(kind, first)[int(row[0]) : int(row[-1]) + 1]  # a view of the memory map
        sample = self._array(kind, first)
        out = np.empty((items.size, *sample.shape[1:]), dtype=sample.dtype)
        for k in np.unique(shard):
            mine = shard == k
            out[mine] = self._array(kind, int(k))[row[mine]]
        return out

    def tokens(self, i: int) -> np.ndarray:
        """``[T, 1+R, C]`` stored tokens of item ``i`` (a read-only memory-mapped view)."""
        shard, row = self._locate(i)
        return self._array("tokens", shard)[row]

    def sizes(self, i: int) -> np.ndarray:
        """``[T, 1+R]`` patches per token of item ``i``."""
        shard, row = self._locate(i)
        return self._array("sizes", shard)[row]

    def source(self, i: int) -> torch.Tensor:
        """``[T, 1+R, 1+P]`` 0/1 source map of item ``i`` (rebuilt from the stored assignment)."""
        shard, row = self._locate(i)
        assignment = torch.from_numpy(np.array(self._array("assignment", shard)[row], dtype=np.int64))  # [T, 1+P]
        return F.one_hot(assignment, self.token_shape[1]).transpose(-1, -2).float()  # [T, 1+R, 1+P]

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps would be pickled as full copies into every DataLoader worker: reopen them there instead.
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    def summary(self) -> dict[str, Any]:
        """One row for ``alt cache info``."""
        t, n, c = self.token_shape
        build = self.index.get("build", {})
        return {
            "name": self.directory.name,
            "split": self.split,
            "videos": len(self.index["records"]),
            "views": self.num_views,
            "items": self.num_items,
            "failed_videos": self.num_failed_videos,
            "tokens": f"{t}x{n}x{c} {self.index['dtype']}",
            "source": self.has_source,
            "size_mb": round(self.nbytes() / 2**20, 1),
            "created": build.get("created", ""),
            "device": build.get("device", ""),
            "precision": build.get("precision", ""),
            "seconds": build.get("seconds", ""),
            "frames": self.spec["sampling"]["num_frames"],
            "fingerprint": self.spec["backbone"]["fingerprint"],
            "key": self.key[:16],
        }


def open_cache(directory: str | Path, spec: dict[str, Any], *, need_source: bool = False) -> FeatureCache | None:
    """The cache in ``directory`` if it exists, matches ``spec`` and has source maps when needed; else ``None``."""
    if not (Path(directory) / INDEX_NAME).is_file():
        return None
    try:
        cache = FeatureCache(directory)
        cache.check(spec)
    except FeatureCacheError as err:
        log.warning("%s", err)
        return None
    if need_source and not cache.has_source:
        return None
    return cache


def list_caches(root: str | Path) -> list[FeatureCache]:
    """Every readable cache directly under ``root`` (newest first)."""
    root = Path(root)
    out = []
    for index in sorted(root.glob(f"*/{INDEX_NAME}")):
        try:
            out.append(FeatureCache(index.parent))
        except (FeatureCacheError, ValueError, KeyError) as err:
            log.warning("skipping %s: %s", index.parent, err)
    return sorted(out, key=lambda c: c.index.get("build", {}).get("created", ""), reverse=True)


def stale_message(root: str | Path, name_prefix: str, split: str, spec: dict[str, Any]) -> str:
    """Why no cache matches: the differences to the newest cache of the same dataset and split, if any."""
    others = [c for c in list_caches(root) if c.split == split and c.directory.name.startswith(name_prefix)]
    if not others:
        return f"no {split} cache exists in {root}"
    diffs = spec_differences(others[0].spec, spec)
    return f"the {split} cache {others[0].directory} was built for other settings: " + "; ".join(diffs)


def cache_path(config: FeatureCacheConfig, dataset_name: str, split: str, spec: dict[str, Any]) -> Path:
    """Folder of the cache of ``split`` for ``spec`` under ``config.dir`` (built or not)."""
    return Path(config.dir).expanduser() / cache_name(dataset_name, split, spec_key(spec))


def open_or_build(
    config: FeatureCacheConfig,
    dataset_name: str,
    split: str,
    spec: dict[str, Any],
    build: Callable[[Path], FeatureCache],
    *,
    world_size: int = 1,
    force: bool = False,
) -> FeatureCache:
    """The cache of ``split`` that matches ``spec``: opened when present, else built by ``build(path)``.

    Args:
        config: The ``features`` option (folder, build policy, source maps).
        dataset_name: Names the cache folder (``<dataset>-<split>-<key>``).
        split: The split cached.
        spec: What the tokens depend on (:func:`cache_spec`).
        build: Writes the cache into the given folder and returns it (:func:`build_feature_cache` with an encoder).
        world_size: Processes of the run; caches are built in one process only.
        force: Rebuild even when a matching cache exists.

    Raises:
        FeatureCacheError: No matching cache and ``build="never"`` (the differences to the newest cache are named),
            or a missing cache under DDP.
    """
    root = Path(config.dir).expanduser()
    path = cache_path(config, dataset_name, split, spec)
    cache = None if force else open_cache(path, spec, need_source=config.store_source)
    if cache is not None:
        return cache
    prefix = cache_name(dataset_name, split, "")
    if config.build == "never" and not force:
        raise FeatureCacheError(
            f"No feature cache of {dataset_name} {split} matches this configuration "
            f"({stale_message(root, prefix, split, spec)}). Run `alt cache build --config ...` with this "
            "configuration, or set features.build: auto."
        )
    if world_size > 1:
        raise FeatureCacheError(
            f"The {split} feature cache is missing ({path}) and caches are not built under DDP (world size "
            f"{world_size}). Run `alt cache build --config <the same configs>` once first; every rank then reads it."
        )
    if root.exists():
        log.info("building the %s feature cache: %s", split, stale_message(root, prefix, split, spec))
    return build(path)


# ----------------------------------------------------------------------------------------------- building
#: What builds a cache: clips ``[B, T, 3, S, S]`` -> region tokens ``[B, T, 1+R, C]``, sizes ``[B, T, 1+R]`` and
#: source maps ``[B, T, 1+R, 1+P]`` (or ``None``): the model's own ``encode_frames``.
EncodeFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]]


def build_feature_cache(
    directory: str | Path,
    dataset: VideoDataset,
    encode: EncodeFn,
    spec: dict[str, Any],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    num_workers: int = 0,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    store_source: bool = False,
    dtype: str = "float16",
    shard_bytes: int = 1 << 30,
    extra: dict[str, Any] | None = None,
) -> FeatureCache:
    """Encode every item of ``dataset`` once with ``encode`` and write the cache to ``directory``.

    ``encode`` runs without autograd on clips moved to ``device``, under ``autocast`` (e.g. the trainer's precision
    context); the caller puts the model in eval mode (and switches source maps on for ``store_source``). Views that
    fail to decode are stored as zeros with ``ok=False``. The folder is written under a temporary name and renamed
    when complete, so an interrupted build leaves no half cache.

    Args:
        directory: Cache folder to create (replaced if it exists).
        dataset: Evaluation-style dataset (see :func:`cache_spec`).
        encode: Clips to region tokens, sizes and source maps (:data:`EncodeFn`: the model's ``encode_frames``).
        spec: ``cache_spec(encoder, fingerprint, dataset)``.
        device: Where ``encode``'s weights are.
        batch_size: Clips per ``encode`` call.
        num_workers: DataLoader workers that decode.
        autocast: Factory of the precision context (``None``: full precision).
        store_source: Also store the patch-to-token assignment (source maps for heatmaps; ``2 (1+P)`` bytes per
            frame).
        dtype: Token storage, ``"float16"`` (our choice) or ``"float32"``.
        shard_bytes: Upper bound of one token shard file (our choice: 1 GiB; at least one item per shard).
        extra: More build information to record in the index (e.g. the precision name).

    Returns:
        The opened cache.

    Raises:
        FeatureCacheError: Tokens that overflow ``float16`` (build with ``dtype="float32"``), or ``store_source``
            with an ``encode`` that returns no source maps.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    directory = Path(directory)
    device = torch.device(device)
    np_dtype = DTYPES[dtype]
    n_items = len(dataset)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shards: list[dict[str, Any]] = []
    arrays: list[dict[str, np.memmap]] = []
    shape: dict[str, tuple[int, ...]] = {}  # per-item shapes, known from the first encoded batch
    rows_per_shard = 1

    def allocate(host: dict[str, np.ndarray]) -> None:
        """Create the shard files once the per-item shapes are known."""
        nonlocal rows_per_shard
        shape.update({name: values.shape[1:] for name, values in host.items()})
        rows_per_shard = max(1, shard_bytes // (int(np.prod(shape["tokens"])) * np.dtype(np_dtype).itemsize))
        for k in range(max(1, -(-n_items // rows_per_shard))):
            rows = min(rows_per_shard, n_items - k * rows_per_shard)
            entry: dict[str, Any] = {
                "rows": rows,
                "tokens": f"tokens_{k:05d}.npy",
                "sizes": f"sizes_{k:05d}.npy",
                "assignment": None,
            }
            if store_source:
                entry["assignment"] = f"assignment_{k:05d}.npy"
            dtypes = {"tokens": np_dtype, "sizes": np.uint16, "assignment": np.int16}
            arrays.append(
                {
                    name: np.lib.format.open_memmap(tmp / entry[name], "w+", dtypes[name], (rows, *shape[name]))
                    for name in host
                }
            )
            shards.append(entry)

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # item i -> row i
        num_workers=num_workers,
        worker_init_fn=worker_init if num_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    failed: list[int] = []
    start = time.perf_counter()
    pos, next_report = 0, 0.1
    try:
        with torch.no_grad():
            for batch in loader:
                video = batch["video"].to(device, non_blocking=True)  # [B, T, 3, S, S]
                with autocast() if autocast is not None else contextlib.nullcontext():
                    tokens, sizes, source = encode(video)  # [B, T, 1+R, C], [B, T, 1+R], [B, T, 1+R, 1+P] | None
                ok = batch["ok"].to(device)  # [B]
                tokens = tokens.float() * ok[:, None, None, None]  # failed views hold zeros, never garbage
                stored = tokens.to(torch.float16 if dtype == "float16" else torch.float32)
                if not torch.isfinite(stored).all():
                    raise FeatureCacheError(
                        "Region tokens overflow float16 (|x| > 65504) for items "
                        f"{pos}..{pos + len(video) - 1}; build the cache with dtype='float32'."
                    )
                host = {"tokens": stored.cpu().numpy(), "sizes": sizes.round().to(torch.int32).cpu().numpy()}
                if store_source:
                    if source is None:
                        raise FeatureCacheError(
                            "store_source=True but encode returned no source maps: switch on the encoder's "
                            "source tracking (encoder.keep_source) while building."
                        )
                    host["assignment"] = source.argmax(dim=2).to(torch.int16).cpu().numpy()  # [B, T, 1+P]
                if not arrays:
                    allocate(host)
                failed += [pos + j for j, good in enumerate(batch["ok"].tolist()) if not good]
                for j in range(len(video)):  # rows may cross a shard boundary
                    shard, row = divmod(pos + j, rows_per_shard)
                    for name, values in host.items():
                        arrays[shard][name][row] = values[j]
                pos += len(video)
                if pos >= next_report * n_items:
                    rate = pos / max(time.perf_counter() - start, 1e-9)
                    log.info("feature cache %s: %d/%d items (%.1f items/s)", directory.name, pos, n_items, rate)
                    next_report += 0.1
        if not arrays:
            raise FeatureCacheError(f"The {dataset.split} dataset has no items to cache.")
        for arr in arrays:
            for a in arr.values():
                a.flush()
        arrays.clear()
        seconds = time.perf_counter() - start
        t, n_tok, c = shape["tokens"]
        index = {
            "format": FORMAT_VERSION,
            "key": spec_key(spec),
            "spec": spec,
            "split": dataset.split,
            "num_items": n_items,
            "num_views": dataset.num_views,
            "token_shape": [t, n_tok, c],
            "num_patches": shape["assignment"][-1] - 1 if store_source else None,
            "dtype": dtype,
            "has_source": store_source,
            "rows_per_shard": rows_per_shard,
            "shards": shards,
            "records": [[r.path, r.label, r.video_id] for r in dataset.records],
            "failed_items": failed,
            "build": {
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seconds": round(seconds, 3),
                "device": str(device),
                "package_version": alt_lightning.__version__,
                "torch_version": torch.__version__,
                **(extra or {}),
            },
        }
        (tmp / INDEX_NAME).write_text(json.dumps(index))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        arrays.clear()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if failed:
        log.warning(
            "feature cache %s: %d of %d items failed to decode; stored as ok=False (evaluation counts them as failed "
            "videos, training leaves them out); see the bad-video CSV",
            directory.name,
            len(failed),
            n_items,
        )
    log.info("feature cache %s: %d items in %.1f s", directory, n_items, seconds)
    return FeatureCache(directory)


# ----------------------------------------------------------------------------------------------- serving
class CachedFeatureDataset(Dataset):
    """Items of a :class:`FeatureCache` in :class:`VideoDataset`'s format, ``"tokens"`` in place of ``"video"``.

    A DataLoader reads a whole batch at once (:meth:`__getitems__`, :meth:`read_batch`; with :func:`collate_cached`
    as its ``collate_fn`` the batch is used as read): one memory-map slice or one gather per shard and one float32
    conversion per batch, instead of one read, one conversion and one Python item per row and a stack.

    Args:
        cache: The opened cache.
        train: Serve only items that decoded (training has no use for failed views; their videos are reported when
            the cache is built); evaluation serves every item, failed ones with ``ok=False`` and zero tokens, so
            they are counted as failed videos, never dropped.
        return_source: Add ``"sizes"`` ``[T, 1+R]`` and ``"source"`` ``[T, 1+R, 1+P]`` (needs a cache built with
            source maps).
    """

    def __init__(self, cache: FeatureCache, *, train: bool = False, return_source: bool = False) -> None:
        if return_source and not cache.has_source:
            raise FeatureCacheError(f"{cache.directory} stores no source maps: rebuild it with store_source=True.")
        self.cache = cache
        self.train = train
        self.split = cache.split
        self.return_source = return_source
        self.items = np.flatnonzero(cache.ok) if train else np.arange(cache.num_items)  # [N] item ids
        self._labels = np.array([r.label for r in cache.records], dtype=np.int64)  # [videos]
        if len(self.items) == 0:
            raise FeatureCacheError(
                f"Every item of {cache.directory} failed to decode; run `alt check-data` on the data configuration."
            )

    @property
    def records(self) -> list[VideoRecord]:
        """The videos (the same list as the decoding dataset's)."""
        return self.cache.records

    @property
    def num_views(self) -> int:
        """Items per video."""
        return self.cache.num_views

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes between epochs: the cached views are fixed."""

    def __len__(self) -> int:
        return len(self.items)

    def __getitems__(self, indices: Sequence[int]) -> CachedBatch:
        """A batch of items read at once (what the DataLoader asks for): see :class:`CachedBatch`."""
        return CachedBatch(self.read_batch(indices))

    def read_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """The collated batch of ``indices``: equal to ``default_collate([self[i] for i in indices])``, read at once.

        Tokens are read with one slice (or one gather per shard) and converted to float32 once per batch; labels,
        indices, views and ``ok`` come from arrays, not from one Python item each.
        """
        items = self.items[np.asarray([int(i) for i in indices], dtype=np.int64)]  # [B] item ids
        rec, view = np.divmod(items, self.cache.num_views)  # [B], [B]
        records = self.cache.records
        batch: dict[str, Any] = {
            "tokens": _float32(self.cache.rows("tokens", items)),  # [B, T, 1+R, C]
            "label": torch.from_numpy(self._labels[rec]),  # [B] int64
            "index": torch.from_numpy(rec),  # [B] int64
            "view": torch.from_numpy(view),  # [B] int64
            "ok": torch.from_numpy(self.cache.ok[items]),  # [B] bool
            "video_id": [records[r].video_id for r in rec.tolist()],
        }
        if self.return_source:
            batch["sizes"] = _float32(self.cache.rows("sizes", items))  # [B, T, 1+R]
            assignment = torch.from_numpy(self.cache.rows("assignment", items).astype(np.int64))  # [B, T, 1+P]
            batch["source"] = F.one_hot(assignment, self.cache.token_shape[1]).transpose(-1, -2).float()
        return batch

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(self.items[index])
        rec_idx, view = divmod(i, self.cache.num_views)
        record = self.cache.records[rec_idx]
        item: dict[str, Any] = {
            "tokens": torch.from_numpy(np.array(self.cache.tokens(i), dtype=np.float32)),  # [T, 1+R, C]
            "label": record.label,
            "index": rec_idx,
            "view": view,
            "ok": bool(self.cache.ok[i]),
            "video_id": record.video_id,
        }
        if self.return_source:
            item["sizes"] = torch.from_numpy(np.array(self.cache.sizes(i), dtype=np.float32))  # [T, 1+R]
            item["source"] = self.cache.source(i)  # [T, 1+R, 1+P]
        return item


class CachedBatch(Sequence):
    """A batch read by :meth:`CachedFeatureDataset.__getitems__`: its items, and the collated batch already made.

    :func:`collate_cached` (the DataModules' ``collate_fn`` for cached splits) returns :attr:`collated` as it is, so a
    batch costs one read and one conversion instead of one per item and a stack. Any other collate function sees a
    sequence of the usual item dicts (built on access, as views of the batch's tensors).

    Args:
        collated: The batch (:meth:`CachedFeatureDataset.read_batch`).
    """

    def __init__(self, collated: dict[str, Any]) -> None:
        self.collated = collated

    def __len__(self) -> int:
        return len(self.collated["video_id"])

    @overload
    def __getitem__(self, j: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, j: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, j: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(j, slice):
            return [self[k] for k in range(*j.indices(len(self)))]
        if not -len(self) <= j < len(self):
            raise IndexError(j)
        item: dict[str, Any] = {}
        for key, value in self.collated.items():
            if key in ("label", "index", "view", "ok"):
                item[key] = value[j].item()  # plain Python numbers, as CachedFeatureDataset.__getitem__ gives them
            else:
                item[key] = value[j]
        return item


def collate_cached(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``collate_fn`` for cached splits: a :class:`CachedBatch` is already collated; anything else is collated."""
    if isinstance(batch, CachedBatch):
        return batch.collated
    return default_collate(list(batch))


def _float32(rows: np.ndarray) -> torch.Tensor:
    """Stored rows as a new float32 tensor: one conversion (float16) or one copy (float32), never the map itself."""
    with warnings.catch_warnings():
        # A read-only memory map: torch warns that writing through a tensor on it is undefined; it is only read here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(rows).to(torch.float32, copy=True)
