"""Headless Chromium (Debian's ``chromium``) for the web-view tests: the DOM it builds for a URL
and a screenshot, each from its own process with a fresh profile; and a small PNG reader so a
screenshot can be checked for what it shows (colours of the page's elements), not by pixels.

Used by tests/cluster (``GET /ui`` of the cluster, ``schedule -o html``) and tests/registry
(``registry serve --ui``)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

from tests.peers import require

__all__ = ["CHROMIUM_TIMEOUT_S", "render", "png_size", "png_colours"]

CHROMIUM_TIMEOUT_S = 120
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def render(
    url: str, workdir: Path, window: tuple[int, int] = (1280, 900), name: str = "ui"
) -> tuple[str, Path]:
    """The DOM Chromium built for ``url`` (serialised HTML) and a screenshot of it."""
    binary = require("chromium", "apt-get install -y chromium")
    profile = workdir / f"chromium-profile-{name}"
    dom = subprocess.run(
        [binary, *_FLAGS, f"--user-data-dir={profile}-dom", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=True,
    )
    shot = workdir / f"{name}.png"
    subprocess.run(
        [
            binary,
            *_FLAGS,
            f"--user-data-dir={profile}-shot",
            f"--screenshot={shot}",
            f"--window-size={window[0]},{window[1]}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=True,
    )
    return dom.stdout, shot


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride = width * bpp
    prev = bytearray(stride)
    rows: list[bytes] = []
    i = 0
    for _ in range(height):
        kind = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + (left + prev[x]) // 2) & 255
        elif kind == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return rows


def png_colours(path: Path) -> Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour a (non-interlaced, 8-bit RGB/RGBA) PNG holds."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0, "unexpected PNG"
            bpp = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in _unfilter(zlib.decompress(b"".join(idat)), width, height, bpp):
        for x in range(0, len(row), bpp):
            counts[(row[x], row[x + 1], row[x + 2])] += 1
    return counts
