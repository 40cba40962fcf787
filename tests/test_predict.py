"""`musicgenre predict` on real recordings, on bad input, and with run directories of both kinds."""

from __future__ import annotations

import json
import os
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import synthetic_melgrams, write_split
from musicgenre.cli import main
from musicgenre.features import FileFeatures
from musicgenre.predict import READY_MODEL, classify, predict_paths


def _jsonl(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(scope="module")
def real_predictions(audio_dir):
    """The shipped model's prediction for every real recording, by file name."""
    return {p.path.name: p for p in predict_paths([audio_dir], workers=2)}


def test_ready_model_ships_in_package():
    assert (READY_MODEL / "model.safetensors").is_file() and (READY_MODEL / "config.json").is_file()
    assert (READY_MODEL / "model.safetensors").stat().st_size < 400_000  # 74,756 float32 parameters


def test_classical_recordings_come_out_classical(real_predictions):
    for name in ["classical_brahms_hungarian_dance_5.ogg", "classical_tchaikovsky_sugar_plum_fairy.ogg"]:
        assert real_predictions[name].genre == "classical", real_predictions[name].probabilities


def test_four_genre_recordings_mostly_right(real_predictions):
    """Real songs of the model's genres, each labelled by the genre its file name starts with."""
    in_scope = {n: p for n, p in real_predictions.items() if n.split("_")[0] in ("blues", "classical", "hiphop", "rock")}
    right = sum(p.genre.startswith(n.split("_")[0]) for n, p in in_scope.items())
    assert len(in_scope) == 6 and right >= 4, {n: p.genre for n, p in in_scope.items()}


def test_probabilities_and_timeline(real_predictions):
    for pred in real_predictions.values():
        assert pred.error is None and not pred.silent
        assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert len(pred.segments) == max(1, math.ceil(pred.duration))
        assert [s.start for s in pred.segments] == list(range(len(pred.segments)))


def test_a_short_clip_is_classified_from_its_own_audio_not_its_padding(audio_dir, tmp_path):
    """Half a second of rock, and the half second after 1 s of it, are rock: zeros filling out their second made
    them near-silence to the model, confident classical (0.97, and 0.95 for that second of the 1.5 s file)."""
    y, sr = sf.read(audio_dir / "rock_fma_001040.mp3", dtype="float32")
    y = y[10 * sr :]
    sf.write(tmp_path / "half.wav", y[: sr // 2], sr)
    sf.write(tmp_path / "one_and_a_half.wav", y[: 3 * sr // 2], sr)
    half, longer = predict_paths([tmp_path / "half.wav", tmp_path / "one_and_a_half.wav"], workers=1)
    assert half.genre == "rock_metal_hardrock" and half.probabilities["rock_metal_hardrock"] > 0.8
    assert [s.genre for s in longer.segments] == ["rock_metal_hardrock"] * 2


def test_cli_json_lines_with_segments(audio_dir, capsys):
    clip = audio_dir / "blues_sorohanro_solo_trumpet.ogg"  # 5.3 s
    assert main(["predict", str(clip), "--json", "--segments"]) == 0
    [record] = _jsonl(capsys)
    assert record["file"] == str(clip) and record["n_segments"] == 6 and len(record["segments"]) == 6
    assert set(record["probabilities"]) == {"blues", "classical", "hiphop", "rock_metal_hardrock"}
    assert record["genre"] == max(record["probabilities"], key=record["probabilities"].get)


def test_folder_goes_on_past_bad_files(audio_dir, tmp_path, capsys):
    (tmp_path / "good.ogg").symlink_to(audio_dir / "classical_brahms_hungarian_dance_5.ogg")
    (tmp_path / "notes.mp3").write_text("this is not audio")
    sr = 96_000
    sf.write(tmp_path / "six_channels.wav", np.random.default_rng(0).normal(0, 0.1, (sr // 2, 6)), sr)
    sf.write(tmp_path / "short.wav", np.sin(np.arange(1600) / 5.0) * 0.5, 8000)  # 0.2 s
    sf.write(tmp_path / "silence.flac", np.zeros(16000), 8000)
    (tmp_path / "gone.mp3").symlink_to(tmp_path / "deleted.mp3")  # these four were skipped without a word
    (tmp_path / "gone2.mp3").symlink_to(tmp_path / "deleted.mp3")
    (tmp_path / "loop.mp3").symlink_to(tmp_path / "loop.mp3")
    os.mkfifo(tmp_path / "stream.wav")
    rc = main(["predict", str(tmp_path), "--json"])
    assert rc == 1
    out = capsys.readouterr()
    records = {json.loads(line)["file"].split("/")[-1]: json.loads(line) for line in out.out.splitlines()}
    assert records["good.ogg"]["genre"] == "classical"
    assert "notes.mp3: not a readable audio file" in records["notes.mp3"]["error"]
    assert records["six_channels.wav"]["n_segments"] == 1 and records["six_channels.wav"]["genre"]
    assert records["short.wav"]["n_segments"] == 1 and records["short.wav"]["genre"]
    assert records["silence.flac"]["silent"] is True and records["silence.flac"]["genre"] is None
    assert out.err.strip().splitlines() == [
        f"error: {tmp_path / 'gone.mp3'}: a link that leads to no file (broken, or a loop)",
        f"error: {tmp_path / 'gone2.mp3'}: a link that leads to no file (broken, or a loop)",
        f"error: {tmp_path / 'loop.mp3'}: a link that leads to no file (broken, or a loop)",
        f"error: {tmp_path / 'notes.mp3'}: not a readable audio file (unknown format or corrupt data)",
        f"error: {tmp_path / 'stream.wav'}: not a regular file (a device, pipe or socket), so not an audio file",
    ]


def test_missing_paths_are_errors_and_the_rest_is_classified(tmp_path, capsys, audio_dir):
    clip = audio_dir / "blues_sorohanro_solo_trumpet.ogg"
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "nope.mp3"), str(clip), str(tmp_path / "empty"), "--json"]) == 1
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["file"] for r in records] == [str(tmp_path / "nope.mp3"), str(clip), str(tmp_path / "empty")]
    assert records[1]["genre"] in records[1]["probabilities"]
    assert out.err.splitlines() == [
        f"error: {tmp_path / 'nope.mp3'}: no such file or folder",
        f"error: {tmp_path / 'empty'}: no audio files (wav, flac, ogg, mp3) in this folder",
    ]


def test_a_folder_or_file_we_may_not_read_is_its_error_and_the_rest_is_classified(tmp_path, capsys, audio_dir, monkeypatch):
    """Simulated (the tests may run as root): a subfolder that cannot be listed, and a named file in a folder
    we may not enter (stat fails), are one error line each; the readable file is still classified."""
    import os

    library, locked = tmp_path / "library", tmp_path / "library" / "album"
    locked.mkdir(parents=True)
    clip = library / "trumpet.ogg"
    clip.symlink_to(audio_dir / "blues_sorohanro_solo_trumpet.ogg")
    hidden_song = tmp_path / "closed" / "song.wav"
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        if Path(os.fsdecode(path)) == hidden_song:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    assert main(["predict", str(hidden_song), str(library), "--workers", "1"]) == 1
    out = capsys.readouterr()
    assert [line.split("  ")[0] for line in out.out.splitlines()] == [str(clip)]
    assert out.err.splitlines() == [f"error: {hidden_song}: permission denied",
                                    f"error: {locked}: this folder cannot be read (permission denied)"]


def test_decoding_workers_that_fail_are_one_error_line(audio_dir, capsys, monkeypatch):
    """A worker killed (out of memory) breaks the pool: one line that says so and how to go on, no traceback."""
    from concurrent.futures.process import BrokenProcessPool

    import musicgenre.features

    class Broken:
        def __init__(self, *args, **kwargs):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(musicgenre.features, "ProcessPoolExecutor", Broken)
    assert main(["predict", str(audio_dir), "--workers", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: the decoding worker processes failed (BrokenProcessPool: A process in the process pool was "
        "terminated abruptly); --workers 1 decodes in this process (workers=1 in Python, where a script that decodes "
        "in workers needs an `if __name__ == \"__main__\":` guard)"]


def test_a_line_break_in_a_file_name_stays_in_its_one_line(tmp_path, audio_dir, capsys):
    odd = tmp_path / "two\nlines.ogg"
    odd.symlink_to(audio_dir / "blues_sorohanro_solo_trumpet.ogg")
    bad = tmp_path / "bad\rname.mp3"
    bad.write_text("not audio")
    assert main(["predict", str(odd), str(bad)]) == 1
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 1 and out.out.startswith(f"{tmp_path}/two\\nlines.ogg  ")
    assert out.err.splitlines() == [f"error: {tmp_path}/bad\\rname.mp3: not a readable audio file (unknown format or corrupt data)"]


def test_a_file_named_twice_by_different_paths_is_classified_once(tmp_path, capsys, audio_dir, monkeypatch):
    clip = audio_dir / "blues_sorohanro_solo_trumpet.ogg"
    (tmp_path / "link").symlink_to(audio_dir)
    monkeypatch.chdir(audio_dir)
    assert main(["predict", clip.name, str(clip), str(tmp_path / "link" / clip.name), "--json"]) == 0
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()] == [clip.name]


def test_wrong_model_dir(tmp_path, capsys, audio_dir):
    (tmp_path / "config.json").write_text('{"kind": "keras-model"}')
    assert main(["predict", str(audio_dir / "blues_sorohanro_solo_trumpet.ogg"), "--model", str(tmp_path)]) == 2
    assert "not a musicgenre run configuration" in capsys.readouterr().err


def test_unexpected_decoder_failure_is_one_files_error(audio_dir, monkeypatch):
    """An exception other than MusicGenreError (soxr, librosa, memory) fails only its file, in one line."""
    import musicgenre.features

    real_decode = musicgenre.features.decode
    broken = audio_dir / "blues_sorohanro_solo_trumpet.ogg"

    def decode(path):
        if path == broken:
            raise MemoryError("cannot allocate\n 42 bytes")
        return real_decode(path)

    monkeypatch.setattr(musicgenre.features, "decode", decode)
    good = audio_dir / "classical_brahms_hungarian_dance_5.ogg"
    bad_pred, good_pred = predict_paths([broken, good], workers=1)
    assert bad_pred.error == f"{broken}: could not be processed (MemoryError: cannot allocate 42 bytes)"
    assert good_pred.error is None and good_pred.genre == "classical"


def test_predict_with_a_melgram_run(tmp_path, audio_dir, capsys):
    root = tmp_path / "mel"
    write_split(root, "train", "melgram", *synthetic_melgrams(32))
    run = tmp_path / "run"
    assert main(["train", "--features", "melgram", "--model", "mel-cnn", "--data", str(root), "--out", str(run),
                 "--epochs", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["predict", str(audio_dir / "blues_sorohanro_solo_trumpet.ogg"), "--model", str(run), "--json"]) == 0
    [record] = _jsonl(capsys)
    assert record["n_segments"] == 6 and record["genre"] in record["probabilities"]


def _strict_json(line: str) -> dict:
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in JSON output: {line}"))


def test_nan_samples_are_an_error_not_nan_probabilities(tmp_path, audio_dir, capsys):
    samples = np.full(16000, 0.1, dtype=np.float32)
    samples[::2] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 8000, subtype="FLOAT")
    clip = audio_dir / "blues_sorohanro_solo_trumpet.ogg"
    assert main(["predict", str(tmp_path / "nan.wav"), str(clip), "--json", "--segments"]) == 1
    out = capsys.readouterr()
    bad, good = [_strict_json(line) for line in out.out.splitlines()]
    assert bad == {"file": str(tmp_path / "nan.wav"), "error": f"{tmp_path / 'nan.wav'}: the audio has NaN or infinite samples (or ones too large for 32-bit floats)"}
    assert good["genre"] in good["probabilities"]
    assert out.err.splitlines() == [f"error: {bad['error']}"]


def test_non_finite_model_output_is_the_files_error(tmp_path):
    """A run whose weights hold a NaN must not print NaN probabilities (nor bare NaN in --json)."""
    from musicgenre.features import FileFeatures
    from musicgenre.predict import classify

    class NanPredictor:
        classes, features = ("blues", "rock"), "mfcc"

        def predict_proba(self, X):
            return np.full((len(X), 2), np.nan)

    ff = FileFeatures(tmp_path / "song.wav", {"mfcc": np.zeros((3, 26))}, np.zeros(3, dtype=bool), 3.0)
    pred = classify(ff, NanPredictor())
    assert pred.error == f"{tmp_path / 'song.wav'}: the model gave NaN or infinite probabilities for this file"
    assert pred.probabilities == {} and pred.segments == []


def test_silent_seconds_have_no_probability(tmp_path, decoded):
    music = decoded["rock_fma_001040.mp3"][: 3 * 8000].copy()
    music[:8000] = 0
    sf.write(tmp_path / "late_start.wav", music, 8000)
    [pred] = predict_paths([tmp_path / "late_start.wav"], workers=1)
    assert [(s.genre, s.probability) for s in pred.segments[:1]] == [(None, None)]
    assert all(s.genre and 0 < s.probability <= 1 for s in pred.segments[1:])
    assert pred.to_json(with_segments=True)["segments"][0] == {"start": 0, "genre": None, "probability": None}


def test_a_silent_second_takes_no_part_in_the_files_genre(tmp_path, decoded):
    """The file's probabilities are those of its seconds with sound: a silent first second changes nothing."""
    music = decoded["rock_fma_001040.mp3"][: 3 * 8000].copy()
    music[:8000] = 0
    sf.write(tmp_path / "late_start.wav", music, 8000)
    sf.write(tmp_path / "music_alone.wav", music[8000:], 8000)
    late, alone = predict_paths([tmp_path / "late_start.wav", tmp_path / "music_alone.wav"], workers=1)
    assert not late.silent and late.genre == alone.genre
    assert late.probabilities == pytest.approx(alone.probabilities, abs=1e-6)


def test_segments_text_shows_no_probability_for_a_silent_second(tmp_path, decoded, capsys):
    music = decoded["rock_fma_001040.mp3"][: 3 * 8000].copy()
    music[:8000] = 0
    sf.write(tmp_path / "late_start.wav", music, 8000)
    assert main(["predict", str(tmp_path / "late_start.wav"), "--segments", "--workers", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0", "s", "(silent)"] and len(lines) == 4
    assert all(float(line.split()[-1]) > 0 for line in lines[2:])


def test_a_file_shorter_than_one_frame_is_too_short(tmp_path):
    sf.write(tmp_path / "click.wav", np.array([0.5]), 8000)
    [pred] = predict_paths([tmp_path / "click.wav"], workers=1)
    assert pred.genre is None and pred.error == (
        f"{tmp_path / 'click.wav'}: too short to analyse: 0.1 ms of audio, less than one 50 ms analysis frame"
    )


def test_empty_path_is_a_usage_error(audio_dir, capsys):
    assert main(["predict", "", str(audio_dir / "blues_sorohanro_solo_trumpet.ogg")]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: '': an empty path names no file or folder\n"
    # an empty --model names no run either: it must not fall back to the shipped model
    assert main(["predict", str(audio_dir / "blues_sorohanro_solo_trumpet.ogg"), "--model", ""]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: '': an empty path names no run directory\n"


def test_a_device_is_not_audio(capsys):
    assert main(["predict", "/dev/null", "--json"]) == 1
    [record] = _jsonl(capsys)
    assert record == {"file": "/dev/null",
                      "error": "/dev/null: not a regular file (a device, pipe or socket), so not an audio file"}


def test_a_short_last_second_counts_for_the_audio_it_holds():
    # 2.02 s: two full seconds that say blues, a 20 ms zero-padded tail that says classical.
    class Fixed:
        classes, features = ("blues", "classical"), "mfcc"

        def predict_proba(self, X):
            return np.array([[0.9, 0.1], [0.9, 0.1], [0.0, 1.0]])

    ff = FileFeatures(Path("f.wav"), {"mfcc": np.zeros((3, 26))}, np.zeros(3, dtype=bool), duration=2.02)
    pred = classify(ff, Fixed())
    assert pred.genre == "blues" and pred.probabilities["classical"] == pytest.approx((0.1 + 0.1 + 0.02) / 2.02, abs=1e-4)


@pytest.mark.parametrize("command, stop, status, line", [
    ("predict", "SIGINT", 130, "interrupted"),  # Ctrl-C
    ("extract", "SIGTERM", 143, "terminated"),  # `timeout` or `kill`: it had left extract's temporary folder
])
def test_a_stop_signal_on_a_folder_stops_with_one_line_and_leaves_nothing(audio_dir, tmp_path, command, stop, status, line):
    """Ctrl-C and `timeout` signal the whole process group, the decoding workers too: they must not print
    their own tracebacks; the command stops with one line, and no temporary folder is left."""
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "library"
    recordings = [f for f in sorted(audio_dir.iterdir()) if f.suffix in (".ogg", ".mp3")]
    for i in range(12):
        for j, f in enumerate(recordings):  # each recording in one genre (in two, extract would leave it out)
            (folder / f"genre{j % 2}").mkdir(parents=True, exist_ok=True)
            (folder / f"genre{j % 2}" / f"{i}-{f.name}").symlink_to(f)
    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    args = {"predict": ["predict", "--json", str(folder)], "extract": ["extract", str(folder), "--out", str(tmp_path / "data")]}
    proc = subprocess.Popen([sys.executable, "-c", code, *args[command], "--workers", "2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if command == "predict":
        assert json.loads(proc.stdout.readline())["file"]  # the workers are decoding, with files left to do
    else:
        while not any(p.name.startswith(".data.tmp") for p in tmp_path.iterdir()):  # the dataset is being built
            assert proc.poll() is None
            time.sleep(0.05)
    os.killpg(proc.pid, getattr(signal, stop))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status and err.splitlines()[-1:] == [line], err[-2000:]
    assert line not in err.splitlines()[:-1] and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library"]
    assert len(out.splitlines()) < 12 * 9 - 1


def test_decoding_workers_end_when_the_command_is_killed_outright(audio_dir, tmp_path):
    """`kill -9` of predict (or the kernel's out-of-memory killer) stops nothing itself: its workers, which
    ignore Ctrl-C and SIGTERM, waited on their pipes forever."""
    import signal
    import subprocess
    import sys
    import time

    for i in range(12):
        for f in sorted(audio_dir.iterdir()):
            if f.suffix in (".ogg", ".mp3"):
                (tmp_path / f"{i}-{f.name}").symlink_to(f)
    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "predict", "--json", str(tmp_path), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert json.loads(proc.stdout.readline())["file"]  # the workers are decoding, with files left to do

    def alive(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and alive(p.name)
                and int(Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid]
    assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, children))


def test_a_reader_that_stops_early_keeps_the_status_of_the_files_that_failed(audio_dir, tmp_path):
    """`predict BAD GOOD... | head -1`: a failure before the reader went still sets status 1 (it was 0), and
    the stop is quiet: the error line, no traceback."""
    import subprocess
    import sys

    (tmp_path / "0-bad.wav").write_text("not audio")
    for i in range(6):  # output well beyond a pipe's buffer, so that the reader's going is felt
        for f in sorted(audio_dir.glob("*.ogg")):
            (tmp_path / f"{i}-{f.name}").symlink_to(f)
    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "predict", "--segments", str(tmp_path), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith(str(tmp_path / "0-blues"))
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() == 1
    assert err == f"error: {tmp_path / '0-bad.wav'}: not a readable audio file (unknown format or corrupt data)\n"
