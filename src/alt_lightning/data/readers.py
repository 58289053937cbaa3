"""Which reader opens a video: the DataModules' ``decoder`` argument.

PyAV (:class:`~alt_lightning.data.decode.VideoReader`, CPU, the default) or torchcodec
(:class:`~alt_lightning.data.torchcodec_reader.TorchCodecReader`, an optional extra; ``"torchcodec:cuda"`` decodes
with NVDEC on this process's GPU). Both readers have the same interface. Kept apart from both, so that neither
reader imports the other.
"""

from __future__ import annotations

import os

from alt_lightning.data.decode import DecoderSetupError, VideoReader

__all__ = ["DECODERS", "check_decoder", "open_video"]

#: Values of the DataModules' ``decoder`` argument: PyAV (:class:`VideoReader`, CPU) or torchcodec
#: (:class:`~alt_lightning.data.torchcodec_reader.TorchCodecReader`, optional; ``"torchcodec:cuda"`` decodes with
#: NVDEC on this process's GPU, ``"torchcodec:cuda:N"`` on GPU ``N``).
DECODERS = ("pyav", "torchcodec", "torchcodec:cuda")


def _split_decoder(decoder: str) -> tuple[str, str]:
    name, _, device = decoder.partition(":")
    if name not in ("pyav", "torchcodec") or (name == "pyav" and device) or (device and device.split(":")[0] != "cuda"):
        raise ValueError(f"decoder must be one of {DECODERS} (or 'torchcodec:cuda:N'), got {decoder!r}")
    return name, device or "cpu"


def check_decoder(decoder: str) -> None:
    """Fail early, before any video is decoded, when ``decoder`` is unknown or cannot run here.

    Raises:
        ValueError: An unknown decoder name.
        DecoderSetupError: torchcodec asked for but not usable (the message says how to install it).
    """
    name, _ = _split_decoder(decoder)
    if name == "torchcodec":
        from alt_lightning.data.torchcodec_reader import INSTALL_HINT, torchcodec_available

        why = torchcodec_available()
        if why is not None:
            raise DecoderSetupError(f"decoder={decoder!r} is not usable here: {why}. {INSTALL_HINT}")


def open_video(
    path: str | os.PathLike[str], decoder: str = "pyav", *, threads: int = 0, timeout_s: float | None = 60.0
) -> VideoReader:
    """Open ``path`` with the chosen decoder; both readers have :class:`VideoReader`'s interface.

    Args:
        path: Video file.
        decoder: One of :data:`DECODERS` (or ``"torchcodec:cuda:N"``).
        threads: Decoder threads (0: FFmpeg's choice).
        timeout_s: Time limit of each call (PyAV; torchcodec cannot be interrupted).
    """
    name, device = _split_decoder(decoder)
    if name == "pyav":
        return VideoReader(path, threads=threads, timeout_s=timeout_s)
    from alt_lightning.data.torchcodec_reader import TorchCodecReader

    return TorchCodecReader(path, threads=threads, timeout_s=timeout_s, device=device)  # type: ignore[return-value]
