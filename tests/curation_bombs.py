"""Compressed-audio bombs for the curation tests: FLAC files of hours of silence with some low
noise, written frame by frame here (libFLAC through soundfile encodes silence at ~25 M samples/s,
a minute per bomb on this machine; these take a second or two).

The layout is FLAC's own (xiph.org/flac/format.html): "fLaC", a STREAMINFO block, then frames of a
fixed block size. A silent frame holds one CONSTANT subframe per channel (3 bytes each); a noise
frame holds VERBATIM 16-bit samples. Every frame carries its number, a CRC-8 of its header and a
CRC-16 of the whole frame, which libsndfile checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK = 4608  # samples per channel per frame: FLAC's subset maximum at 48 kHz


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly if crc & top else crc << 1) & mask
        table.append(crc)
    return table


_CRC8, _CRC16 = _crc_table(0x07, 8), _crc_table(0x8005, 16)


def crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def crc16(data: bytes, crc: int = 0) -> int:
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ b]
    return crc


def _zero_shift(n: int) -> list[int]:
    """The CRC-16 state after n zero bytes, for each single-bit starting state (the map is linear)."""
    return [crc16(bytes(n), 1 << bit) for bit in range(16)]


def _utf8_number(n: int) -> bytes:
    """A frame number coded as FLAC codes it (UTF-8's scheme, up to 31 bits)."""
    if n < 0x80:
        return bytes([n])
    out = []
    limit = 0x3F
    while n > limit:
        out.append(0x80 | (n & 0x3F))
        n >>= 6
        limit >>= 1
    lead = (0xFF << (7 - len(out))) & 0xFF
    return bytes([lead | n, *reversed(out)])


def write_flac_bomb(path: Path, seconds: float, rate: int, channels: int, noise_frames: int = 0,
                    noise_level: float = 0.01, declare_length: bool = True, seed: int = 0) -> Path:
    """`seconds` of 16-bit FLAC: digital silence with `noise_frames` frames of low noise spread
    evenly through it. With declare_length False the header says "length unknown", so only
    decoding finds out how long it is."""
    frames = max(1, int(seconds * rate) // BLOCK)
    total = frames * BLOCK
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal((BLOCK, channels)) * noise_level * 32767).astype(">i2")
    payload = b"".join(b"\x02" + noise[:, c].tobytes() for c in range(channels))  # VERBATIM subframes
    payload_crc, shift = crc16(payload), _zero_shift(len(payload))
    silent = b"\x00\x00\x00" * channels  # CONSTANT subframes of value 0
    noisy = set(np.linspace(0, frames - 1, noise_frames).astype(int).tolist()) if noise_frames else set()
    info = bytearray(34)
    info[0:2] = info[2:4] = BLOCK.to_bytes(2, "big")  # min and max block size; frame sizes unknown (0)
    packed = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | (total if declare_length else 0)
    info[10:18] = packed.to_bytes(8, "big")  # rate:20, channels-1:3, bits-1:5, total samples:36; MD5 unknown
    with open(path, "wb") as f:
        f.write(b"fLaC" + bytes([0x80]) + (34).to_bytes(3, "big") + bytes(info))
        for n in range(frames):
            header = bytes([0xFF, 0xF8, 0x70, ((channels - 1) << 4) | 0x08]) + _utf8_number(n) + \
                (BLOCK - 1).to_bytes(2, "big")  # fixed blocking; block size 16-bit at end; rate from STREAMINFO
            header += bytes([crc8(header)])
            if n in noisy:
                state = crc16(header)
                crc = payload_crc
                for bit in range(16):
                    if state >> bit & 1:
                        crc ^= shift[bit]
                f.write(header + payload + crc.to_bytes(2, "big"))
            else:
                frame = header + silent
                f.write(frame + crc16(frame).to_bytes(2, "big"))
    return path
