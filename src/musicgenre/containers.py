"""What an audio file's container says of its length, read from its bytes where the decoder cannot be trusted
with it: Ogg pages cut short or chained streams, WAV and FLAC files joined, the MP3 frames a file holds, a WAV's
data size. Files are read, not memory-mapped: one that shrank meanwhile (still being written) would stop the process."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

# Writers streaming a WAV to a pipe leave a placeholder data size (sox 0x7ffff000, ffmpeg 0xffffffff): no length.
_UNKNOWN_DATA_SIZE = 0x7FFFF000
# The first two bytes of an MPEG Layer III frame header: 11 sync bits, a version (2.5, 2 or 1), layer III, either
# protection bit. Searched for by the regex engine: a run of 0xFF bytes (4 MB of them took 2.3 s byte by byte).
_LAYER3_SYNC = re.compile(rb"\xff[\xe2\xe3\xf2\xf3\xfa\xfb]")
# A FLAC stream's start: its marker and the header of its STREAMINFO block (type 0, 34 bytes), last block or not.
_FLAC_STREAM = re.compile(rb"fLaC[\x00\x80]\x00\x00\x22")


def ogg_problem(path: Path) -> str | None:
    """What a walk over an Ogg file's page headers (a few hundred reads for a song) finds wrong with it, if
    anything. An Ogg header declares no length, so a file cut short decodes without complaint to wherever it
    stops; the cut almost always falls inside a page, which the walk finds (a cut exactly between two pages
    cannot be told from a whole stream: the end-of-stream flag would tell, but streams recorded without it are
    whole too). A stream that begins after others have run (chained: a radio recording, files joined with cat)
    is not decoded at all: the decoder stops at the end of the first."""
    with open(path, "rb") as f:
        size, pos, in_stream = os.fstat(f.fileno()).st_size, 0, False
        while pos < size:
            f.seek(pos)
            header = f.read(27)  # "OggS", version, flags, granule, serial, sequence, CRC, segment count
            if not b"OggS".startswith(header[:4]):
                break  # bytes after the last page that are not one (a tag): judged by the pages before them
            if len(header) < 27 or len(lacing := f.read(header[26])) < header[26]:
                return "truncated file: its last Ogg page is cut short"
            begins = bool(header[5] & 0x02)  # beginning-of-stream flag: the first page of a logical stream
            if begins and in_stream:
                return ("Ogg streams chained one after another, of which only the first could be decoded "
                        "(join them into one stream, e.g. by converting the file)")
            in_stream |= not begins
            pos += 27 + len(lacing) + sum(lacing)
    return "truncated file: its last Ogg page is cut short" if pos > size else None


def _is_id3v2(data: bytes, pos: int) -> bool:
    """Whether an ID3v2 tag begins at `pos`: "ID3", a version from 2 to 4, and a size in syncsafe bytes."""
    header = data[pos:pos + 10]
    return len(header) == 10 and header[:3] == b"ID3" and 2 <= header[3] <= 4 and all(b < 0x80 for b in header[6:])


def _after_id3v2(data: bytes, pos: int) -> int:
    """Where the ID3v2 tag that begins at `pos` ends (its size is syncsafe; a footer where the flags say so)."""
    header = data[pos:pos + 10]
    size = (header[6] & 0x7F) << 21 | (header[7] & 0x7F) << 14 | (header[8] & 0x7F) << 7 | header[9] & 0x7F
    return pos + 10 + size + (10 if header[5] & 0x10 else 0)


# Layer III bitrates (kbit/s) by bitrate index, for MPEG-1 and for MPEG-2 and 2.5; sample rates by version bits
_MP3_KBITS = {True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
              False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frame(header: bytes) -> tuple[int, float] | None:
    """The length in bytes and the duration in seconds of the MPEG Layer III frame whose header `header` begins
    with, or None if it begins with none."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0 or (header[1] >> 1) & 3 != 1:
        return None  # no sync, or not Layer III
    version, bitrate, rate, padding = (header[1] >> 3) & 3, header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or bitrate in (0, 15) or rate == 3:  # reserved, free-format, bad, reserved
        return None
    mpeg1, sr = version == 3, _MPEG_RATES[version][rate]
    return (144 if mpeg1 else 72) * 1000 * _MP3_KBITS[mpeg1][bitrate] // sr + padding, (1152 if mpeg1 else 576) / sr


def _frames_in_a_row(data: bytes, pos: int, n: int = 3) -> bool:
    """Whether `n` MP3 frames follow one another from `pos`: audio, not bytes that look like a frame header by
    chance (in a tag's cover art, in junk)."""
    for _ in range(n):
        if (frame := mp3_frame(data[pos:pos + 4])) is None:
            return False
        pos += frame[0]
    return True


def _resync(data: bytes, pos: int) -> int | None:
    """The first place from `pos` where an ID3v2 tag or MP3 frames in a row begin, past what is neither (an ID3v1
    or APE tag, zeros, junk), as a decoder resynchronises; None if nothing follows. Each byte is searched once:
    "ID3" only up to the next Layer III frame's first two bytes (its letters hold none of them)."""
    while True:
        sync = match.start() if (match := _LAYER3_SYNC.search(data, pos)) else -1
        end = len(data) if sync < 0 else sync
        id3 = data.find(b"ID3", pos, end)
        while id3 >= 0 and not _is_id3v2(data, id3):
            id3 = data.find(b"ID3", id3 + 1, end)
        if id3 >= 0:
            return id3
        if sync < 0:
            return None
        if _frames_in_a_row(data, sync):
            return sync
        pos = sync + 1


def flac_problem(path: Path) -> str | None:
    """What is wrong with a FLAC file, if anything: a second FLAC stream after the first one's audio (files joined
    with cat), which the decoder does not reach: it stops at the end of the first. Searched for from where the
    first stream's audio begins, after any ID3v2 tag before it and its metadata blocks, whose contents (cover art,
    comments, an application's data) may hold anything."""
    data = path.read_bytes()
    pos = 0
    while _is_id3v2(data, pos):
        pos = _after_id3v2(data, pos)
    if data[pos:pos + 4] != b"fLaC":
        return None
    pos += 4
    while len(header := data[pos:pos + 4]) == 4:  # each block: a last-block flag and type, then its length
        pos += 4 + int.from_bytes(header[1:], "big")
        if header[0] & 0x80:
            break
    if _FLAC_STREAM.search(data, pos) is not None:
        return ("FLAC streams joined one after another, of which only the first could be decoded "
                "(join them into one stream, e.g. by converting the file)")
    return None


def mp3_frames(path: Path) -> tuple[float, bool]:
    """The duration of the MP3 frames in a file, counted by walking their headers, stepping over ID3v2 tags and
    past whatever else lies between them; and whether its first frame is a Xing/Info header (LAME's, which counts
    the stream's frames). The decoder trusts that count, or else estimates a length from the file's size and first
    frame: files joined with cat, or a VBR file without that header, decode short without complaint."""
    data = path.read_bytes()
    pos, seconds, counted = _resync(data, 0), 0.0, None
    while pos is not None:
        if (frame := mp3_frame(data[pos:pos + 4])) is not None:
            if counted is None:  # the tag sits after the first frame's side information
                counted = any(tag in data[pos:pos + min(frame[0], 200)] for tag in (b"Xing", b"Info"))
            pos, seconds = pos + frame[0], seconds + frame[1]
        elif _is_id3v2(data, pos):
            pos = _after_id3v2(data, pos)
        else:
            pos = _resync(data, pos + 1)
    return seconds, bool(counted)


def _is_wav_header(header: bytes) -> bool:
    """Whether 12 bytes begin a WAV file: a RIFF, RF64 or BW64 chunk of form WAVE."""
    return header[:4] in (b"RIFF", b"RF64", b"BW64") and header[8:12] == b"WAVE"


def _wav_data_chunk(f: BinaryIO) -> tuple[int, int] | None:
    """Where a WAV or RF64 file's data chunk begins and the bytes it declares (its ds64 chunk's count, in RF64; -1
    for a placeholder: no length), walking its chunks from the file's start; None for no data chunk."""
    riff, file_size = f.read(12), os.fstat(f.fileno()).st_size
    if not _is_wav_header(riff):
        return None
    pos, ds64 = 12, None
    while pos + 8 <= file_size and len(header := f.read(8)) == 8:  # sizes past the end (64-bit in RF64) end the walk
        size = int.from_bytes(header[4:], "little")
        if header[:4] == b"ds64":
            ds64 = int.from_bytes(f.read(16)[8:], "little")  # after the RIFF size: the data size
        elif header[:4] == b"data":
            if size == 0xFFFFFFFF and riff[:4] != b"RIFF":  # RF64: the size is in the ds64 chunk
                size = ds64 or -1
            return pos, -1 if size >= _UNKNOWN_DATA_SIZE and riff[:4] == b"RIFF" or size == 0 else size
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
        f.seek(pos)
    return None


def wav_data_bytes(path: Path) -> tuple[int, int] | None:
    """The bytes a WAV or RF64 file's data chunk declares, and those the file holds after the chunk's start; None
    where it declares no length (a placeholder) or has no data chunk. Read from the chunks themselves: libsndfile's
    log of them stops at 2 KB, and a tag's text can write anything there."""
    with open(path, "rb") as f:
        if (chunk := _wav_data_chunk(f)) is None or chunk[1] < 0:
            return None
        pos, size = chunk
        return size, os.fstat(f.fileno()).st_size - pos - 8


def wav_problem(path: Path) -> str | None:
    """What is wrong with a WAV file, if anything: another WAV file right after its data (files joined with cat),
    which the decoder does not reach: it reads the data chunk alone."""
    with open(path, "rb") as f:
        if (chunk := _wav_data_chunk(f)) is None or chunk[1] < 0:
            return None
        pos, size = chunk
        if (end := pos + 8 + size + (size & 1)) + 12 > os.fstat(f.fileno()).st_size:  # no room for another file
            return None
        f.seek(end)
        header = f.read(12)
    if _is_wav_header(header):
        return ("WAV files joined one after another, which the decoder does not read as one "
                "(join them into one file, e.g. by converting it)")
    return None
