"""The record type that every annotation parser returns and the generic video dataset consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class VideoRecord:
    """One labelled video as an annotation file describes it.

    Attributes:
        path: Path of the video file (absolute, or as the parser resolved it against its root).
        label: Class index into the dataset's class-name list; ``-1`` when unknown (prediction).
        video_id: Stable identifier, unique within a split; evaluation aggregates views by it.
        meta: Format-specific extras (e.g. Kinetics ``time_start``/``time_end``, SSv2 ``template``,
            the annotation ``source`` as ``"file:line"``).
    """

    path: str
    label: int
    video_id: str
    meta: dict[str, Any] = field(default_factory=dict)
