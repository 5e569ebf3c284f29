"""A small PNG encoder (zlib only), so saving an image needs neither OpenCV nor matplotlib."""

from __future__ import annotations

import struct
import zlib
from typing import Any

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Channels → PNG colour type: grey, grey + alpha, RGB, RGBA.
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: Any, compress_level: int = 6) -> bytes:
    """Encode an 8-bit image as PNG bytes.

    Args:
        image: A ``uint8`` array (numpy, or a CPU tensor) of shape ``(H, W)`` (grey) or
            ``(H, W, C)`` with ``C`` = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
        compress_level: zlib level, 0–9.

    Returns:
        The PNG file's bytes.

    Raises:
        TypeError: ``image`` is not an array, or not ``uint8``.
        ValueError: ``image`` has a shape PNG cannot hold.
    """
    if hasattr(image, "detach") and hasattr(image, "numpy"):  # a torch tensor
        image = image.detach().cpu().numpy()
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or dtype is None or not hasattr(image, "tobytes"):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if str(dtype) != "uint8":
        raise TypeError(f"image must have dtype uint8, got {dtype}")
    if len(shape) == 2:
        height, width, channels = shape[0], shape[1], 1
    elif len(shape) == 3 and shape[2] in _COLOR_TYPES:
        height, width, channels = shape
    else:
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C) with C in 1–4, got {tuple(shape)}"
        )
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(shape)}")
    pixels = image.tobytes(order="C")  # row-major whatever the array's own layout
    stride = width * channels
    # Each scanline starts with its filter type; 0 = none.
    raw = b"".join(b"\x00" + pixels[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, compress_level)),
            _chunk(b"IEND", b""),
        )
    )
