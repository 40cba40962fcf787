import re
import signal
from contextlib import contextmanager
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from musicgenre.audio import SAMPLE_RATE, SEGMENT_SAMPLES, load_audio, scan_audio, segment
from musicgenre.io import as_path
from musicgenre.errors import MusicGenreError

# Durations from shared/audio/SOURCES.md, in seconds.
DURATIONS = {
    "blues_sorohanro_solo_trumpet.ogg": 5.3,
    "classical_brahms_hungarian_dance_5.ogg": 45.8,
    "classical_tchaikovsky_sugar_plum_fairy.ogg": 120,
    "folk_karissa_hobbs_lets_go_fishin.ogg": 133,
    "hiphop_admiralbob77_choice_drum_bass.ogg": 25,
    "hiphop_fma_000002.mp3": 30,
    "jazz_kevin_macleod_vibe_ace.ogg": 61.5,
    "rock_fma_001040.mp3": 30,
    "speech_librispeech_198-209-0000.ogg": 13.9,
}


def test_finds_all_real_recordings(audio_dir):
    assert [p.name for p in scan_audio(audio_dir)[0]] == sorted(DURATIONS)


def test_decodes_real_recordings_to_8k_mono(decoded):
    assert set(decoded) == set(DURATIONS)
    for name, y in decoded.items():
        assert y.dtype == np.float32 and y.ndim == 1, name
        assert len(y) / SAMPLE_RATE == pytest.approx(DURATIONS[name], abs=0.5), name
        assert np.isfinite(y).all() and 0.01 < np.abs(y).max() <= 1.5, name


def test_decoding_matches_librosa_load(audio_dir, decoded):
    for name, y in decoded.items():
        ref, sr = librosa.load(audio_dir / name, sr=SAMPLE_RATE, mono=True)
        assert sr == SAMPLE_RATE and y.shape == ref.shape, name
        np.testing.assert_allclose(y, ref, atol=1e-5, err_msg=name)


def test_segment_lengths_and_padding():
    y = np.arange(1, 2.5 * SEGMENT_SAMPLES + 1, dtype=np.float32)
    segments = segment(y)
    assert segments.shape == (3, SEGMENT_SAMPLES) and segments.dtype == np.float32
    np.testing.assert_array_equal(segments.ravel()[: len(y)], y)
    assert not segments[2, SEGMENT_SAMPLES // 2 :].any()
    assert segment(np.ones(2 * SEGMENT_SAMPLES, dtype=np.float32)).shape == (2, SEGMENT_SAMPLES)


def test_segment_can_fill_the_last_with_its_own_audio_repeated():
    y = np.arange(1, 2.3 * SEGMENT_SAMPLES + 1, dtype=np.float32)
    segments = segment(y, pad="repeat")
    np.testing.assert_array_equal(segments[:2].ravel(), y[: 2 * SEGMENT_SAMPLES])
    rest = y[2 * SEGMENT_SAMPLES :]
    np.testing.assert_array_equal(segments[2], np.tile(rest, 4)[:SEGMENT_SAMPLES])
    with pytest.raises(MusicGenreError, match="unknown pad 'wrap'"):
        segment(y, pad="wrap")


def test_short_clip_gives_one_padded_segment():
    clip = np.ones(int(0.2 * SAMPLE_RATE), dtype=np.float32)
    segments = segment(clip)
    assert segments.shape == (1, SEGMENT_SAMPLES)
    assert segments[0, : len(clip)].all() and not segments[0, len(clip) :].any()


def test_six_channel_96k_wav_is_mixed_and_resampled(tmp_path):
    t = np.arange(int(2.5 * 96000)) / 96000
    channels = np.stack([np.sin(2 * np.pi * 440 * t) * (k + 1) / 10 for k in range(6)], axis=1)
    path = tmp_path / "surround.wav"
    sf.write(path, channels, 96000)
    y = load_audio(path)
    assert y.shape == (int(2.5 * SAMPLE_RATE),)
    # The mono mix of a 440 Hz tone of amplitude 0.35 keeps its amplitude once resampled.
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.35, abs=0.01)


def _error_naming(path, match: str):
    return pytest.raises(MusicGenreError, match=re.escape(path.name) + ".*" + match)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with _error_naming(path, "no such file"):
        load_audio(path)


def test_text_file_renamed_mp3(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("not audio at all\n" * 50)
    with _error_naming(path, "not a readable audio file"):
        load_audio(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_ogg(tmp_path, audio_dir, keep):
    """An Ogg header declares no length: a file cut short decodes without complaint unless its pages are
    checked. Every whole recording passes, and so does one followed by bytes that are not a page (a tag)."""
    for source in sorted(audio_dir.glob("*.ogg")):
        data = source.read_bytes()
        tagged = tmp_path / f"tagged-{source.name}"
        tagged.write_bytes(data + b"TAG" + bytes(125))  # an ID3v1 tag
        assert len(load_audio(source)) == len(load_audio(tagged)) > 0
        path = tmp_path / f"cut-{source.name}"
        path.write_bytes(data[: int(len(data) * keep)])
        with _error_naming(path, "truncated file: its last Ogg page is cut short"):
            load_audio(path)


def test_chained_ogg_streams_are_refused_not_half_read(tmp_path, audio_dir):
    """Two recordings joined with cat: the decoder stopped at the end of the first, and the file was classified
    from that part alone, without a word. One whole recording, multiplexed or not, is one stream."""
    first, second = (audio_dir / n for n in ["blues_sorohanro_solo_trumpet.ogg", "speech_librispeech_198-209-0000.ogg"])
    path = tmp_path / "joined.ogg"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    with _error_naming(path, "Ogg streams chained one after another, of which only the first could be decoded"):
        load_audio(path)


def test_mp3s_joined_or_without_their_length_header_are_refused_not_half_read(tmp_path, audio_dir):
    """Two MP3s joined with cat: the decoder stopped where the first one's Xing/Info header says its stream ends,
    or, without that header, where it guessed from the file's size (52.5 s of 60), and the file was classified
    from that part alone. Their frames, counted, tell. A whole recording followed by a tag (ID3v1, APE) decodes."""
    from musicgenre.containers import mp3_frame

    first, second = ((audio_dir / n).read_bytes() for n in ["hiphop_fma_000002.mp3", "rock_fma_001040.mp3"])

    def untagged(data: bytes, header_frame: bool = True) -> bytes:  # without its ID3v2 tag (and its Info frame)
        start = _after_id3v2_start(data)
        return data[start + (0 if header_frame else mp3_frame(data[start:])[0]):]

    whole = len(load_audio(audio_dir / "hiphop_fma_000002.mp3"))
    assert abs(len(load_audio(_write(tmp_path / "bare.mp3", untagged(first, False)))) - whole) < SAMPLE_RATE // 100
    for name, data in [("joined.mp3", first + second), ("joined-untagged.mp3", first + untagged(second)),
                       ("joined-without-info.mp3", untagged(first, False) + untagged(second, False))]:
        path = _write(tmp_path / name, data)
        with _error_naming(path, r"only (30\.0|52\.5) s of the 60\.0 s of MP3 frames in the file could be decoded"):
            load_audio(path)
    for tag in [b"TAG" + bytes(125), b"APETAGEX" + bytes(24)]:
        assert len(load_audio(_write(tmp_path / "tagged.mp3", first + tag))) == whole


def test_mp3s_joined_across_tags_gaps_or_junk_are_refused_and_a_tag_cut_short_ends_the_walk(tmp_path, audio_dir):
    """The walk over the frames stopped at an ID3v1 tag, zeros or junk between the joined files (then agreeing with
    the decoder's half), and looped for ever on a file ending in the first bytes of an ID3v2 tag."""
    first = (audio_dir / "hiphop_fma_000002.mp3").read_bytes()
    whole = len(load_audio(audio_dir / "hiphop_fma_000002.mp3"))
    v1 = b"TAG" + bytes(125)
    for name, data in [("id3v1.mp3", first + v1 + first + v1), ("gap.mp3", first + bytes(10) + first),
                       ("junk-first.mp3", np.random.default_rng(0).bytes(1000) + first + first)]:
        path = _write(tmp_path / name, data)
        with _error_naming(path, r"only 30\.0 s of the 60\.0 s of MP3 frames in the file could be decoded"):
            load_audio(path)
    with _within(20):
        for tail in [b"ID3", first[:8]]:  # a cat cut inside the next file's tag
            assert len(load_audio(_write(tmp_path / "cut-tag.mp3", first + tail))) == whole


@contextmanager
def _within(seconds: int):
    """Fail, rather than hang the suite, if the block runs longer than `seconds`."""
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail(f"still running after {seconds} s"))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_the_frame_walk_over_a_long_mp3_with_stray_bytes_is_linear(tmp_path, audio_dir):
    """A byte between frames every fourth frame (a damaged file the decoder reads): each stop searched the rest of
    the file for an ID3 tag again, 36 s for 10 minutes of audio and about 20 minutes for an hour."""
    from musicgenre.containers import mp3_frame, mp3_frames

    data = (audio_dir / "hiphop_fma_000002.mp3").read_bytes()
    pos, frames = _after_id3v2_start(data), []
    while (frame := mp3_frame(data[pos:pos + 4])) is not None:
        frames.append(data[pos:pos + frame[0]])
        pos += frame[0]
    stray = b"".join(f + (b"\0" if i % 4 == 3 else b"") for i, f in enumerate(frames[1:]))  # without its Info frame
    path = _write(tmp_path / "ten-minutes.mp3", stray * 20)
    with _within(10):  # about 0.03 s
        seconds, counted = mp3_frames(path)
    assert abs(seconds - 600) < 1 and not counted


def test_whole_mp3s_without_a_length_header_are_not_called_truncated(tmp_path, audio_dir):
    """Without a Xing/Info header the decoder's length is its estimate from the file's size, which a cover-art
    tag or a quiet VBR start throws off: whole files were refused as truncated (31.6 s of 30, 36.6 s of 20)."""
    from musicgenre.containers import mp3_frame

    data = (audio_dir / "hiphop_fma_000002.mp3").read_bytes()
    start = _after_id3v2_start(data)
    bare = data[:start] + data[start + mp3_frame(data[start:])[0]:]  # its Info frame removed
    item = (50000).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"Cover Art (Front)\0" + bytes(50000)
    ape = lambda flags: (b"APETAGEX" + (2000).to_bytes(4, "little") + (len(item) + 32).to_bytes(4, "little")
                         + (1).to_bytes(4, "little") + flags.to_bytes(4, "little") + bytes(8))
    whole = len(load_audio(audio_dir / "hiphop_fma_000002.mp3"))
    got = len(load_audio(_write(tmp_path / "bare-ape.mp3", bare + ape(0xA0000000) + item + ape(0x80000000))))
    assert abs(got - whole) < SAMPLE_RATE // 10
    sr = 44100
    signal = np.concatenate([np.zeros(sr * 5), 0.5 * np.random.default_rng(0).standard_normal(sr * 15)])
    encoded = tmp_path / "vbr.mp3"
    sf.write(encoded, np.c_[signal, signal], sr, format="MP3", bitrate_mode="VARIABLE", compression_level=0.5)
    vbr = encoded.read_bytes()
    start = _after_id3v2_start(vbr)
    without_xing = _write(tmp_path / "vbr-no-xing.mp3", vbr[:start] + vbr[start + mp3_frame(vbr[start:])[0]:])
    assert abs(len(load_audio(without_xing)) - 20 * SAMPLE_RATE) < SAMPLE_RATE // 10


def _after_id3v2_start(data: bytes) -> int:
    """Where the MPEG data of a file begins: after its ID3v2 tag, if it has one."""
    if data[:3] != b"ID3":
        return 0
    return 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])


def test_flac_files_joined_are_refused_and_one_that_records_no_length_is_read(tmp_path):
    """Joined with cat, the decoder read the first file alone, without a word; a FLAC written to a pipe (total
    samples 0: unknown) failed as an array too big to allocate."""
    import io

    sr, seconds = 44100, 20
    signal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr * seconds) / sr)
    buffer = io.BytesIO()
    sf.write(buffer, signal, sr, format="FLAC")
    flac = buffer.getvalue()
    path = _write(tmp_path / "joined.flac", flac * 2)
    with _error_naming(path, "FLAC streams joined one after another, of which only the first could be decoded"):
        load_audio(path)
    unknown = bytearray(flac)
    unknown[21] &= 0xF0  # STREAMINFO's 36-bit total samples: 0
    unknown[22:26] = bytes(4)
    assert abs(len(load_audio(_write(tmp_path / "streamed.flac", bytes(unknown)))) - seconds * SAMPLE_RATE) < SAMPLE_RATE // 10


def test_a_flac_file_with_an_id3_tag_or_odd_metadata_is_not_taken_for_joined_files(tmp_path):
    """The search for a second stream began at byte 4: an ID3v2 tag before the stream's own marker, or metadata
    holding the marker's bytes (a comment, an embedded FLAC as cover art), had whole files refused as joined."""
    import io

    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(np.arange(44100 * 5) / 10), 44100, format="FLAC")
    flac = buffer.getvalue()
    frame = b"TIT2" + (6).to_bytes(4, "big") + bytes(2) + b"\x00Title"
    tagged = b"ID3\x03\x00\x00" + len(frame).to_bytes(4, "big") + frame + flac  # a size under 128: syncsafe as is
    blocks, pos = [], 4
    while True:  # the stream's metadata blocks, the last one's flag cleared
        last, size = flac[pos] & 0x80, int.from_bytes(flac[pos + 1:pos + 4], "big")
        blocks.append(bytes([flac[pos] & 0x7F]) + flac[pos + 1:pos + 4 + size])
        pos += 4 + size
        if last:
            break
    application = b"TEST" + flac[:2000]  # another stream's start inside an APPLICATION block (type 2), last
    embedded = b"fLaC" + b"".join(blocks) + bytes([0x82]) + len(application).to_bytes(3, "big") + application + flac[pos:]
    for name, data in [("tagged.flac", tagged), ("embedded.flac", embedded)]:
        assert abs(len(load_audio(_write(tmp_path / name, data))) - 5 * SAMPLE_RATE) <= 1


def test_a_wav_cut_short_is_refused_whatever_its_tags_say_or_how_many_chunks_come_first(tmp_path):
    """Truncation was read from libsndfile's log of the chunks, which stops at 2 KB (60 small chunks before the
    data hid the cut) and into which a tag's text is written (a comment made a whole file 'truncated')."""
    sf.write(tmp_path / "w.wav", 0.3 * np.sin(np.arange(44100 * 10) / 10), 44100, subtype="PCM_16")
    wav = (tmp_path / "w.wav").read_bytes()
    at = wav.find(b"data")

    def riff(chunks: bytes) -> bytes:
        body = b"WAVE" + wav[12:at] + chunks + wav[at:]
        return b"RIFF" + len(body).to_bytes(4, "little") + body

    many = b"".join(b"ab%02d" % k + (10).to_bytes(4, "little") + b"x" * 10 for k in range(60))
    path = _write(tmp_path / "cut.wav", riff(many)[: len(riff(many)) // 2])
    with _error_naming(path, "truncated file: only 5.0 s of the 10.0 s its header declares"):
        load_audio(path)
    text = b"x\ndata : 99999999 (should be 100)\0"
    comment = b"LIST" + (len(text) + 12).to_bytes(4, "little") + b"INFO" + b"ICMT" + len(text).to_bytes(4, "little") + text
    assert len(load_audio(_write(tmp_path / "commented.wav", riff(comment)))) == 10 * SAMPLE_RATE


@pytest.mark.parametrize("container", ["WAV", "RF64"])
def test_wav_files_joined_are_refused(tmp_path, container):
    """Joined with cat, an RF64 file was read to its first data chunk's end, without a word (libsndfile refuses a
    RIFF one outright, which was called unknown or corrupt)."""
    sf.write(tmp_path / "one.wav", 0.3 * np.sin(np.arange(44100 * 5) / 10), 44100, format=container)
    one = (tmp_path / "one.wav").read_bytes()
    assert len(load_audio(tmp_path / "one.wav")) == 5 * SAMPLE_RATE
    path = _write(tmp_path / "joined.wav", one * 2)
    with _error_naming(path, "WAV files joined one after another, which the decoder does not read as one"):
        load_audio(path)


def test_a_header_that_claims_absurd_lengths_is_a_refusal_not_a_crash(tmp_path):
    """A damaged size field: an RF64 data size past 2**63 raised ValueError from a seek, and an MP3's Xing frame
    count or a FLAC's sample count of 2**32 and more made soundfile allocate its whole claim (18 TiB) first."""
    import io

    def written(fmt: str, **kwargs) -> bytearray:
        buffer = io.BytesIO()
        sf.write(buffer, 0.1 * np.sin(np.arange(44100) * 0.3), 44100, format=fmt, **kwargs)
        return bytearray(buffer.getvalue())

    rf64 = written("RF64")
    at = rf64.find(b"ds64") + 16  # its data size
    rf64[at:at + 8] = (2**63 - 1).to_bytes(8, "little")
    mp3 = written("MP3")
    at = max(mp3.find(b"Xing"), mp3.find(b"Info")) + 8  # its frame count
    mp3[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "big")
    flac = written("FLAC")
    flac[21:26] = ((int.from_bytes(flac[21:26], "big") & ~(2**36 - 1)) | (2**36 - 1)).to_bytes(5, "big")  # total samples
    for name, data in [("huge.wav", rf64), ("huge.mp3", mp3), ("huge.flac", flac)]:
        path = _write(tmp_path / name, bytes(data))
        with pytest.raises(MusicGenreError, match=re.escape(str(path)) + ": (truncated file|not a readable audio file)"):
            load_audio(path)


def test_a_truncated_rf64_file_is_refused(tmp_path):
    import io

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(44100 * 20), 44100, format="RF64")
    path = _write(tmp_path / "cut.wav", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with _error_naming(path, "truncated file: only 10.0 s of the 20.0 s its header declares"):
        load_audio(path)


def test_samples_that_overflow_when_resampled_are_an_error_naming_the_file(tmp_path, recwarn):
    """Float samples near float32's largest (3e38): averaged to mono in float32 they overflowed (numpy's warning
    on stderr), and resampled, the error named no file."""
    from musicgenre.features import file_features

    big = np.full((44100 * 2, 2), 3e38, np.float32)
    big[::2] *= -1
    sf.write(tmp_path / "loud.wav", big, 44100, subtype="FLOAT")
    result = file_features(tmp_path / "loud.wav", ("mfcc",))
    assert result.error == f"{tmp_path / 'loud.wav'}: its samples overflow when resampled (samples far beyond the [-1, 1] of audio)"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_truncated_mp3(tmp_path, audio_dir):
    data = (audio_dir / "rock_fma_001040.mp3").read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(data[: len(data) * 3 // 10])
    with _error_naming(path, "truncated"):
        load_audio(path)


@pytest.mark.parametrize("name", ["rock_fma_001040.mp3", "hiphop_fma_000002.mp3"])
def test_an_mp3_cut_by_a_few_percent_is_truncated_and_a_whole_one_is_not(tmp_path, audio_dir, name):
    """Their Xing/Info headers count the frames: a file cut to 96% (about a second short) is caught."""
    data = (audio_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 96 // 100])
    with _error_naming(path, r"truncated file: only 28\.\d s of the 30\.0 s"):
        load_audio(path)
    assert len(load_audio(audio_dir / name)) > 29.9 * SAMPLE_RATE  # the whole file: no error


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1)), SAMPLE_RATE)
    with _error_naming(path, "no audio samples"):
        load_audio(path)
    zero = tmp_path / "zero.mp3"  # 0 bytes: said as it is, not as an unknown format
    zero.touch()
    with _error_naming(zero, "an empty file \\(0 bytes\\)"):
        load_audio(zero)


def test_errors_are_one_line(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("text")
    with pytest.raises(MusicGenreError) as info:
        load_audio(path)
    assert "\n" not in str(info.value)


def test_scan_audio(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/x.WAV", "a/b/y.flac", "a/b/z.Ogg", "a/b/w.mp3", "a/readme.txt", "a/notes.md"]:
        (tmp_path / name).write_bytes(b"")
    assert scan_audio(tmp_path / "a") == (sorted(tmp_path / n for n in ["a/x.WAV", "a/b/y.flac", "a/b/z.Ogg", "a/b/w.mp3"]), [])
    assert scan_audio(tmp_path / "a" / "notes.md") == ([tmp_path / "a" / "notes.md"], [])  # named: kept, whatever it is


def test_scan_audio_errors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hi")
    with _error_naming(tmp_path / "docs", "no audio files"):
        scan_audio(tmp_path / "docs")
    with _error_naming(tmp_path / "gone", "no such file"):
        scan_audio(tmp_path / "gone")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_samples(tmp_path, bad):
    samples = np.full(SAMPLE_RATE, 0.1, dtype=np.float32)
    samples[100:200] = bad
    path = tmp_path / "float.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    with _error_naming(path, "NaN or infinite samples"):
        load_audio(path)


def _stereo_wav(path, seconds: float, sr: int = 44100) -> bytes:
    """Write a stereo 16-bit tone of the given length and return the file's bytes."""
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, sr, subtype="PCM_16")
    return path.read_bytes()


def test_truncated_wav(tmp_path):
    """A WAV cut to its first third still declares 3 s in its data chunk; libsndfile silently reads 1 s."""
    path = tmp_path / "cut.wav"
    data = _stereo_wav(path, 3.0)
    path.write_bytes(data[: len(data) // 3])
    with _error_naming(path, r"truncated file: only 1\.0 s of the 3\.0 s"):
        load_audio(path)


def test_a_wav_short_of_its_declared_length_by_any_amount_is_truncated(tmp_path):
    path = tmp_path / "cut.wav"
    data = _stereo_wav(path, 20.0, sr=8000)
    path.write_bytes(data[: len(data) * 96 // 100])
    with _error_naming(path, r"truncated file: only 19\.2 s of the 20\.0 s its header declares could be decoded \(0\.8 s short\)"):
        load_audio(path)
    path.write_bytes(data[:-400])  # 100 stereo frames short: rounded to tenths, the two lengths are the same
    with _error_naming(path, r"truncated file: only 20\.0 s of the 20\.0 s its header declares could be decoded \(0\.0125 s short\)"):
        load_audio(path)
    path.write_bytes(data[:-4])  # one stereo 16-bit frame short
    with _error_naming(path, "truncated file"):
        load_audio(path)


@pytest.mark.parametrize("subtype", ["GSM610", "G721_32"])
def test_wav_codecs_libsndfile_cannot_seek_in_are_read_whole(tmp_path, subtype):
    path = tmp_path / f"{subtype}.wav"
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE, subtype=subtype)
    y = load_audio(path)
    assert len(y) >= 2 * SAMPLE_RATE - 160 and 0.3 < np.abs(y).max() < 0.7


def test_a_file_or_folder_we_may_not_read_says_so(tmp_path, monkeypatch):
    """Permission denied is reported as that, not as corrupt audio or a folder without audio (simulated:
    the tests may run as root, whom permissions do not stop)."""
    import os

    import musicgenre.audio

    song, album = tmp_path / "song.wav", tmp_path / "album"
    _stereo_wav(song, 1.0)
    album.mkdir()
    _stereo_wav(album / "b.wav", 1.0)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    real_open, real_scandir = open, os.scandir
    monkeypatch.setattr(musicgenre.audio, "open", lambda p, *a: denied(p) if p == song else real_open(p, *a), raising=False)
    monkeypatch.setattr(os, "scandir", lambda p=".": denied(p) if Path(p) == album else real_scandir(p))
    with _error_naming(song, "permission denied"):
        load_audio(song)
    assert musicgenre.audio.scan_audio(tmp_path) == ([song], [f"{album}: this folder cannot be read (permission denied)"])


def test_wav_streamed_with_unknown_length_is_read_whole(tmp_path):
    """Writers piping a WAV leave 0xffffffff as its data size: that is no declared length, not a truncation."""
    path = tmp_path / "streamed.wav"
    data = bytearray(_stereo_wav(path, 2.0))
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(data)
    assert len(load_audio(path)) == 2 * SAMPLE_RATE


def test_device_is_not_a_regular_file():
    path = Path("/dev/null")
    with _error_naming(path, "not a regular file"):
        load_audio(path)
    with _error_naming(path, "not a regular file"):
        scan_audio(path)


def test_empty_path_is_not_the_current_folder():
    with pytest.raises(MusicGenreError, match="^'': an empty path names no file or folder$"):
        as_path("")
    with pytest.raises(MusicGenreError, match="empty path"):
        load_audio("")


def test_folders_are_searched_through_symlinked_subfolders_without_looping(audio_dir, tmp_path):
    """A library whose albums are links to folders elsewhere: their files are found, once, and a link back
    to the library itself does not loop."""
    album = tmp_path / "elsewhere" / "album"
    album.mkdir(parents=True)
    (album / "song.mp3").symlink_to(audio_dir / "rock_fma_001040.mp3")
    library = tmp_path / "library"
    library.mkdir()
    (library / "album").symlink_to(album, target_is_directory=True)
    (library / "loop").symlink_to(library, target_is_directory=True)
    assert scan_audio(library) == ([library / "album" / "song.mp3"], [])


def test_a_corrupt_mp3_is_one_error_without_the_decoders_own_lines(audio_dir, tmp_path, capfd):
    """libmpg123 writes its complaints (resync notes, dequantization errors) to the process's stderr itself;
    they must not pile up above the one-line error."""
    data = bytearray((audio_dir / "rock_fma_001040.mp3").read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start : start + 20000 : 7] = rng.integers(0, 256, len(range(start, start + 20000, 7)), dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.mp3"
    path.write_bytes(bytes(data))
    with _error_naming(path, "truncated file"):
        load_audio(path)
    assert capfd.readouterr().err == ""


def test_hidden_files_and_folders_in_a_folder_are_left_out(tmp_path):
    """A trash folder inside a genre was trained on, and macOS's ._ files were error lines."""
    for name in ["a.wav", ".Trash-1000/deleted.wav", "._a.wav", "album/b.wav", "album/.hidden/c.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, np.zeros(800), SAMPLE_RATE)
    assert scan_audio(tmp_path) == ([tmp_path / "a.wav", tmp_path / "album" / "b.wav"], [])
    assert scan_audio(tmp_path / "._a.wav") == ([tmp_path / "._a.wav"], [])  # named itself: read as asked
