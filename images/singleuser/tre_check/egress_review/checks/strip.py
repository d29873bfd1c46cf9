"""Metadata stripped from released images: PNG text and EXIF chunks, JPEG EXIF/XMP and comments.

A figure made on a workstation can carry the author's name, software, a timestamp, a GPS
position or a thumbnail of the uncropped image. The pixels a checker reviewed are kept byte for
byte; only the chunks or segments that describe rather than draw are dropped. Pure Python, so it
runs wherever the checks do; a file that is not a well-formed PNG or JPEG is released unchanged.
"""

from __future__ import annotations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that draw the image or say how to show its colours; text, EXIF and time chunks are dropped.
PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD",
            b"pHYs", b"acTL", b"fcTL", b"fdAT"}
JPEG_DROP = {0xE1, *range(0xE3, 0xEE), 0xEF, 0xFE}  # APP1 (EXIF, XMP), APP3-13, APP15, comments


def strip_png(data: bytes) -> bytes:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        if kind in PNG_KEEP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    raise ValueError("PNG without IEND")


def strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    out, pos = [b"\xff\xd8"], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: what follows is the image itself
            out.append(data[pos:])
            return b"".join(out)
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker not in JPEG_DROP:
            out.append(data[pos:pos + 2 + length])
        pos += 2 + length
    raise ValueError("JPEG without image data")


def stripped(data: bytes, name: str) -> bytes:
    """The image without its metadata, or the same bytes (not an image, or not well formed)."""
    lower = name.lower()
    try:
        if lower.endswith(".png"):
            return strip_png(data)
        if lower.endswith((".jpg", ".jpeg")):
            return strip_jpeg(data)
    except ValueError:
        return data
    return data
