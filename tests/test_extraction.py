import json
import os
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr

import musicgenre.extraction
import musicgenre.features
from musicgenre.audio import SAMPLE_RATE
from musicgenre.cli import main
from musicgenre.errors import MusicGenreError
from musicgenre.extraction import _check_ratios, _split_counts, build_dataset

# genre -> (recording, start second) for 3-second clips cut from the real recordings
CLIPS = {
    "blues": [("blues_sorohanro_solo_trumpet.ogg", 0), ("blues_sorohanro_solo_trumpet.ogg", 2.5)],
    "classical": [
        ("classical_brahms_hungarian_dance_5.ogg", 10),
        ("classical_brahms_hungarian_dance_5.ogg", 20),
        ("classical_tchaikovsky_sugar_plum_fairy.ogg", 30),
    ],
    "hiphop": [("hiphop_admiralbob77_choice_drum_bass.ogg", 5), ("hiphop_fma_000002.mp3", 5)],
}


@pytest.fixture(scope="module")
def genre_dir(tmp_path_factory, decoded, audio_dir):
    """Genre folders of short wav clips, one full mp3 (linked), one clip with a silent second, one bad file."""
    root = tmp_path_factory.mktemp("genres")
    for genre, clips in CLIPS.items():
        (root / genre).mkdir()
        for i, (name, start) in enumerate(clips):
            begin = int(start * SAMPLE_RATE)
            sf.write(root / genre / f"clip{i}.wav", decoded[name][begin : begin + 3 * SAMPLE_RATE], SAMPLE_RATE)
    rock = root / "rock_metal_hardrock"
    rock.mkdir()
    (rock / "full.mp3").symlink_to(audio_dir / "rock_fma_001040.mp3")
    with_silence = decoded["rock_fma_001040.mp3"][: 3 * SAMPLE_RATE].copy()
    with_silence[SAMPLE_RATE : 2 * SAMPLE_RATE] = 0
    sf.write(rock / "gap.wav", with_silence, SAMPLE_RATE)
    (rock / "broken.mp3").write_text("this is not an mp3\n")
    return root


@pytest.fixture(scope="module")
def built(genre_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "data"
    return out, build_dataset(genre_dir, out, workers=2, progress=False)


def load_split(out, split, folder):
    return np.load(out / split / folder / "X.npy"), np.load(out / split / folder / "labels.npy")


def test_arrays_have_the_study_layout(built):
    out, manifest = built
    totals = 0
    for split in ("train", "val"):
        (mfcc, mfcc_labels), (mel, mel_labels) = load_split(out, split, "mfccs"), load_split(out, split, "melgrams")
        assert mfcc.dtype == mel.dtype == np.float32
        assert mfcc.shape == (len(mfcc_labels), 26) and mel.shape == (len(mel_labels), 21, 128)
        assert mfcc_labels.dtype.kind == "U" and (mfcc_labels == mel_labels).all()
        assert np.isfinite(mfcc).all() and np.isfinite(mel).all()
        expected = [f for f in manifest["files"] if f["split"] == split]
        assert len(mfcc) == sum(f["n_segments"] - f["n_silent"] for f in expected)
        for label in {f["label"] for f in expected}:
            assert (mfcc_labels == label).sum() == sum(f["n_segments"] - f["n_silent"] for f in expected if f["label"] == label)
        totals += len(mfcc)
    # seven 3 s clips, the 30 s mp3, the clip with a silent second dropped; and the second blues clip's last
    # second, the recording's last 0.33 s of fading noise (peaks near -78 dBFS), is silent too
    assert totals == 7 * 3 + 30 + 2 - 1
    assert np.load(out / "train" / "mfccs" / "labels.npy").dtype == np.dtype("<U19")


def test_manifest_lists_files_splits_and_the_bad_file(built):
    out, manifest = built
    assert json.loads((out / "manifest.json").read_text()) == manifest
    by_path = {f["path"]: f for f in manifest["files"]}
    assert len(by_path) == 10
    broken = by_path["rock_metal_hardrock/broken.mp3"]
    assert broken["split"] is None and "broken.mp3" in broken["error"]
    assert by_path["rock_metal_hardrock/gap.wav"]["n_silent"] == 1
    assert by_path["rock_metal_hardrock/full.mp3"]["n_segments"] == 30
    for genre in ("blues", "classical", "hiphop", "rock_metal_hardrock"):
        splits = {f["split"] for f in manifest["files"] if f["label"] == genre and f["error"] is None}
        assert splits == {"train", "val"}, genre  # each file in one split, each split with files


def test_seeded_split_is_deterministic(built, genre_dir, tmp_path):
    out, manifest = built
    again = build_dataset(genre_dir, tmp_path / "again", workers=1, progress=False)
    assert again["files"] == manifest["files"]
    for split in ("train", "val"):
        for folder in ("mfccs", "melgrams"):
            for a, b in zip(load_split(out, split, folder), load_split(tmp_path / "again", split, folder)):
                np.testing.assert_array_equal(a, b)


def test_refuses_to_overwrite(built, genre_dir):
    out, _ = built
    with pytest.raises(MusicGenreError, match="not empty"):
        build_dataset(genre_dir, out, progress=False)


def test_ratio_with_an_empty_val_writes_train_only_and_trains(genre_dir, tmp_path, capsys):
    out = tmp_path / "data"
    manifest = build_dataset(genre_dir, out, split_ratio="1/0", workers=1, progress=False)
    assert {f["split"] for f in manifest["files"]} == {"train", None} and manifest["split_ratio"] == [1.0, 0.0]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train"]
    assert main(["train", "--data", str(out), "--out", str(tmp_path / "run"), "--epochs", "1", "--seed", "0"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("ratio", ["abc", "0.8/x", "0.8", "0/1", "-1/2", (0.6, 0.1, 0.1, 0.2), "nan/1", "1e309/1", "0/0.5/0.5"])
def test_bad_split_ratios_are_one_line_errors(genre_dir, tmp_path, ratio):
    with pytest.raises(MusicGenreError, match=r"^split ratio .*: give 2 or 3 non-negative shares \(train/val or train/val/test\)[^\n]*$"):
        build_dataset(genre_dir, tmp_path / "out", split_ratio=ratio, progress=False)
    assert not (tmp_path / "out").exists()


def test_nothing_readable_for_train_is_an_error_and_leaves_nothing(tmp_path):
    (tmp_path / "genres" / "jazz").mkdir(parents=True)
    (tmp_path / "genres" / "jazz" / "bad.wav").write_text("not audio")
    with pytest.raises(MusicGenreError, match=r"genres: no readable, non-silent audio for the train split; nothing "
                       r"to train on \(1 of 1 files unreadable, the first: .*bad\.wav: "):
        build_dataset(tmp_path / "genres", tmp_path / "out", workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genres"]


def test_overwrite_replaces_the_whole_dataset(built, genre_dir, tmp_path):
    out = tmp_path / "data"
    (out / "test" / "mfccs").mkdir(parents=True)
    (out / "test" / "mfccs" / "X.npy").write_bytes(b"old")
    (out / "notes.txt").write_text("old")
    build_dataset(genre_dir, out, split_ratio="0.8/0.2", workers=1, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train", "val"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left beside it
    np.testing.assert_array_equal(load_split(out, "val", "mfccs")[0], load_split(built[0], "val", "mfccs")[0])


def test_a_crash_while_writing_leaves_the_old_dataset(built, genre_dir, tmp_path, monkeypatch):
    out = tmp_path / "data"
    out.mkdir()
    (out / "manifest.json").write_text("old")

    def crash(split_dir, rows):
        raise OSError("disk full")

    monkeypatch.setattr(musicgenre.extraction, "_write_split", crash)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(genre_dir, out, workers=1, progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] and (out / "manifest.json").read_text() == "old"


def test_unexpected_decoder_failure_skips_only_that_file(genre_dir, tmp_path, monkeypatch):
    real_decode = musicgenre.features.decode

    def decode(path):
        if path.name == "gap.wav":
            raise ValueError("soxr: bad ratio")
        return real_decode(path)

    monkeypatch.setattr(musicgenre.features, "decode", decode)
    manifest = build_dataset(genre_dir, tmp_path / "data", workers=1, progress=False)
    gap = next(f for f in manifest["files"] if f["path"].endswith("gap.wav"))
    assert gap["error"] == f"{genre_dir / 'rock_metal_hardrock' / 'gap.wav'}: could not be processed (ValueError: soxr: bad ratio)"
    assert gap["split"] is None and sum(f["error"] is None for f in manifest["files"]) == 8


def test_bad_audio_dirs(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "song.wav").write_bytes(b"")
    with pytest.raises(MusicGenreError, match="flat.*no genre subfolders"):
        build_dataset(tmp_path / "flat", tmp_path / "out", progress=False)
    with pytest.raises(MusicGenreError, match=r"song.wav: a file, not a folder \(give a folder with one subfolder"):
        build_dataset(tmp_path / "flat" / "song.wav", tmp_path / "out", progress=False)
    with pytest.raises(MusicGenreError, match=r"nowhere: no such folder \("):
        build_dataset(tmp_path / "nowhere", tmp_path / "out", progress=False)
    (tmp_path / "genres" / "jazz").mkdir(parents=True)
    with pytest.raises(MusicGenreError, match="genres: no audio files .* in its genre folders"):
        build_dataset(tmp_path / "genres", tmp_path / "out", progress=False)
    with pytest.raises(MusicGenreError, match="seed -1 out of range"):  # before any audio is decoded
        build_dataset(tmp_path / "genres", tmp_path / "out", seed=-1, progress=False)
    (tmp_path / "spaced" / "blues ").mkdir(parents=True)  # would label its clips 'blues ', a genre of its own
    with pytest.raises(MusicGenreError, match="'blues ' is not a genre name"):
        build_dataset(tmp_path / "spaced", tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    "n, ratios, expected",
    [(10, (0.8, 0.2), [8, 2]), (3, (0.8, 0.2), [2, 1]), (2, (0.8, 0.2), [1, 1]), (1, (0.8, 0.2), [1, 0]),
     (4, (1.0, 0.0), [4, 0]), (0, (0.8, 0.2), [0, 0]),
     (1, (0.3, 0.7), [1, 0]), (2, (0.1, 0.9), [1, 1])],  # train first: a genre must be learnable
)
def test_split_counts(n, ratios, expected):
    assert _split_counts(n, np.array(ratios)).tolist() == expected


def test_a_silent_file_is_skipped_and_takes_no_split(tmp_path, decoded):
    """With one sounding and one silent file at 1/1, the silent one must not take the only val place
    and leave a split without the genre: it is listed as skipped, and the sounding file trains."""
    jazz = tmp_path / "genres" / "jazz"
    jazz.mkdir(parents=True)
    sf.write(jazz / "song.wav", decoded["jazz_kevin_macleod_vibe_ace.ogg"][: 3 * SAMPLE_RATE], SAMPLE_RATE)
    sf.write(jazz / "silence.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    manifest = build_dataset(tmp_path / "genres", tmp_path / "out", split_ratio="1/1", workers=1, progress=False)
    by_name = {f["path"]: f for f in manifest["files"]}
    assert by_name["jazz/silence.wav"]["split"] is None
    assert by_name["jazz/silence.wav"]["error"] == f"{jazz / 'silence.wav'}: no sound: every second is silent"
    assert by_name["jazz/song.wav"]["split"] == "train" and by_name["jazz/song.wav"]["error"] is None
    X, labels = load_split(tmp_path / "out", "train", "mfccs")
    assert len(X) == 3 and set(labels) == {"jazz"}


def test_a_skipped_file_whose_name_holds_a_line_break_keeps_one_line(tmp_path, decoded, capsys):
    for genre, name in (("blues", "blues_sorohanro_solo_trumpet.ogg"), ("hiphop", "hiphop_fma_000002.mp3")):
        (tmp_path / "genres" / genre).mkdir(parents=True)
        sf.write(tmp_path / "genres" / genre / "a.wav", decoded[name][: 3 * SAMPLE_RATE], SAMPLE_RATE)
    (tmp_path / "genres" / "blues" / "bad\nname.mp3").write_text("not audio")
    assert main(["extract", str(tmp_path / "genres"), "--out", str(tmp_path / "out"), "--split-ratio", "1/0", "--workers", "1"]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if "name.mp3" in line]
    assert skipped == [f"skipped: {tmp_path}/genres/blues/bad\\nname.mp3: not a readable audio file (unknown format or corrupt data)"]


def test_a_one_sample_file_is_skipped(tmp_path, decoded):
    rock = tmp_path / "genres" / "rock"
    rock.mkdir(parents=True)
    sf.write(rock / "song.wav", decoded["rock_fma_001040.mp3"][: 2 * SAMPLE_RATE], SAMPLE_RATE)
    sf.write(rock / "click.wav", np.array([0.5]), SAMPLE_RATE)
    manifest = build_dataset(tmp_path / "genres", tmp_path / "out", workers=1, progress=False)
    click = next(f for f in manifest["files"] if f["path"] == "rock/click.wav")
    assert click["split"] is None and "too short to analyse" in click["error"]


def test_huge_split_ratio_shares_do_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _check_ratios("1e308/1e308").tolist() == [0.5, 0.5]
        assert _check_ratios((3, 1)).tolist() == [0.75, 0.25]


def test_extract_says_when_train_holds_one_genre_only(tmp_path, decoded, capsys):
    """`train` refuses a one-genre dataset: extract writes it (genres may be added later) but says so."""
    rock = tmp_path / "genres" / "rock"
    rock.mkdir(parents=True)
    sf.write(rock / "song.wav", decoded["rock_fma_001040.mp3"][: 2 * SAMPLE_RATE], SAMPLE_RATE)
    assert main(["extract", str(tmp_path / "genres"), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert "note: the train split holds one genre only (rock): `train` needs two or more" in capsys.readouterr().err
    blues = tmp_path / "genres" / "blues"
    blues.mkdir()
    sf.write(blues / "song.wav", decoded["blues_sorohanro_solo_trumpet.ogg"][: 2 * SAMPLE_RATE], SAMPLE_RATE)
    assert main(["extract", str(tmp_path / "genres"), "--out", str(tmp_path / "out2"), "--workers", "1"]) == 0
    assert capsys.readouterr().err == ("note: the val split asked for (20%) holds no clips: no genre has enough files "
                                       "to give it one (files, not seconds, are split)\n")  # one file per genre
    # three rock songs and one blues song split 50/50: val gets rock only, and its figures say nothing of blues
    for i in (2, 3):
        sf.write(rock / f"song{i}.wav", decoded["rock_fma_001040.mp3"][i * SAMPLE_RATE: (i + 2) * SAMPLE_RATE], SAMPLE_RATE)
    assert main(["extract", str(tmp_path / "genres"), "--out", str(tmp_path / "out3"), "--workers", "1",
                 "--split-ratio", "0.5/0.5"]) == 0
    assert capsys.readouterr().err == ("note: the val split has no clips of blues (too few files of them): "
                                       "its figures leave that genre out\n")


def test_names_that_are_not_utf8_are_extracted_classified_and_loaded(tmp_path, decoded, capfdbinary):
    """An old library's Latin-1 names reach Python with surrogate escapes: one such file had stopped extract
    with a traceback, was unreadable to predict, and a run saved under such a name could not be loaded."""
    import os

    names = {"blues": "blues_sorohanro_solo_trumpet.ogg", "rock": "rock_fma_001040.mp3"}
    for genre, source in names.items():
        (tmp_path / "lib" / genre).mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "lib" / genre / f"{i}.wav", decoded[source][i * 4 * SAMPLE_RATE:][:4 * SAMPLE_RATE], SAMPLE_RATE)
    latin1 = os.fsdecode(os.fsencode(tmp_path / "lib" / "blues") + b"/caf\xe9.wav")
    sf.write(os.fsencode(latin1), decoded[names["blues"]][: 4 * SAMPLE_RATE], SAMPLE_RATE)
    genre = os.fsencode(tmp_path / "lib") + b"/chanson-fran\xe7aise"  # a genre folder so named: its name is a label
    os.mkdir(genre)
    assert main(["extract", str(tmp_path / "lib"), "--out", str(tmp_path / "data"), "--workers", "1"]) == 2
    assert b"'chanson-fran\\udce7aise' is not a genre name" in capfdbinary.readouterr().err
    os.rmdir(genre)
    assert main(["extract", str(tmp_path / "lib"), "--out", str(tmp_path / "data"), "--workers", "1"]) == 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"].startswith("blues/caf"))
    assert entry["path"] == "blues/caf\udce9.wav" and entry["error"] is None and entry["n_segments"] == 4
    capfdbinary.readouterr()
    assert main(["predict", latin1, "--json"]) == 0
    assert json.loads(capfdbinary.readouterr().out)["file"] == latin1
    assert main(["predict", latin1]) == 0  # the name printed as its own bytes, as ls prints it
    assert capfdbinary.readouterr().out.startswith(os.fsencode(latin1) + b"  ")
    run = os.fsdecode(os.fsencode(tmp_path) + b"/run-\xe9")
    assert main(["train", "--data", str(tmp_path / "data"), "--epochs", "2", "--seed", "0", "--out", run]) == 0
    assert main(["evaluate", run, "--data", str(tmp_path / "data")]) == 0
    assert b"run-\xe9" in capfdbinary.readouterr().out
    assert main(["report", run, "--out", str(tmp_path / "report")]) == 0
    assert b"run-\xe9" in (tmp_path / "report" / "report.md").read_bytes()


def test_a_file_reached_by_two_paths_is_extracted_once(tmp_path, decoded):
    """A link in a genre folder to one of its own files (a playlist folder) put the same recording in train and
    val with most seeds: its seconds leaked into validation."""
    for genre, source in {"blues": "classical_brahms_hungarian_dance_5.ogg", "rock": "rock_fma_001040.mp3"}.items():
        (tmp_path / "lib" / genre / "playlist").mkdir(parents=True)
        for i in range(3):
            sf.write(tmp_path / "lib" / genre / f"{i}.wav", decoded[source][i * 2 * SAMPLE_RATE:][:2 * SAMPLE_RATE], SAMPLE_RATE)
        (tmp_path / "lib" / genre / "playlist" / "best.wav").symlink_to(tmp_path / "lib" / genre / "0.wav")
    (tmp_path / "lib" / "rock" / "stray.wav").symlink_to(tmp_path / "lib" / "blues" / "1.wav")  # and in another genre
    (tmp_path / "lib" / "blues" / "z.wav").symlink_to(tmp_path / "lib" / "rock" / "2.wav")  # listed before its file
    manifest = build_dataset(tmp_path / "lib", tmp_path / "out", split_ratio="1/1", workers=1, progress=False)
    by_path = {f["path"]: f for f in manifest["files"]}
    assert by_path["blues/0.wav"]["split"] is not None and by_path["blues/playlist/best.wav"]["split"] is None
    assert by_path["blues/playlist/best.wav"]["error"].endswith(f"the same file as {tmp_path / 'lib' / 'blues' / '0.wav'}, "
                                                                "which is extracted instead")
    assert by_path["rock/stray.wav"]["split"] is None and by_path["rock/playlist/best.wav"]["split"] is None
    assert by_path["blues/z.wav"]["split"] is None and by_path["rock/2.wav"]["split"] is not None  # the file's genre
    assert sum(f["split"] is not None for f in manifest["files"]) == 6, manifest["files"]


def _song(path, decoded, source="rock_fma_001040.mp3", start=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, decoded[source][start * SAMPLE_RATE:][: 2 * SAMPLE_RATE], SAMPLE_RATE)


def test_three_shares_make_a_test_split_that_evaluate_reads(genre_dir, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["extract", str(genre_dir), "--out", str(out), "--split-ratio", "0.5/0.25/0.25", "--workers", "1"]) == 0
    printed, err = capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split_ratio"] == [0.5, 0.25, 0.25]
    assert manifest["versions"]["librosa"] == librosa.__version__ and manifest["versions"]["soxr"] == soxr.__version__
    # only classical has three readable files, one for each split; the others' two go to train and val
    assert {f["label"] for f in manifest["files"] if f["split"] == "test"} == {"classical"}
    test_labels = np.load(out / "test" / "mfccs" / "labels.npy")
    assert len(test_labels) == 3 and set(test_labels) == {"classical"}
    assert "test: 3 one-second clips (6%) from 1 file" in printed
    assert "note: the test split has no clips of blues, hiphop, rock_metal_hardrock (too few files of them)" in err
    assert main(["train", "--data", str(out), "--out", str(tmp_path / "run"), "--epochs", "2", "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(out), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3


def test_an_out_where_the_folders_links_lead_is_refused_even_with_overwrite(tmp_path, decoded):
    """`--out` at the folder a genre link leads to, or at the folder of a linked file, deleted the user's
    audio with --overwrite: the check of what the command reads looked at the audio folder only."""
    for i in range(2):
        _song(tmp_path / "real" / "rock" / f"{i}.wav", decoded, start=2 * i)
    _song(tmp_path / "elsewhere" / "song.wav", decoded, "blues_sorohanro_solo_trumpet.ogg")
    (tmp_path / "lib" / "blues").mkdir(parents=True)
    (tmp_path / "lib" / "rock").symlink_to(tmp_path / "real" / "rock", target_is_directory=True)
    (tmp_path / "lib" / "blues" / "song.wav").symlink_to(tmp_path / "elsewhere" / "song.wav")
    for out, read in [(tmp_path / "real" / "rock", tmp_path / "lib" / "rock"),
                      (tmp_path / "real", tmp_path / "lib" / "rock"),
                      (tmp_path / "elsewhere", tmp_path / "lib" / "blues" / "song.wav")]:
        with pytest.raises(MusicGenreError, match=f"^{out}: overlaps the input {read}"):
            build_dataset(tmp_path / "lib", out, workers=1, progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "real" / "rock").iterdir()) == ["0.wav", "1.wav"]
    assert (tmp_path / "elsewhere" / "song.wav").is_file()


def test_one_recording_under_two_genres_is_left_out_and_a_linked_genre_folder_keeps_no_files(tmp_path, decoded):
    """Hard links are one file (they had seconds in two splits, or two labels); a genre folder that is a
    link to another takes none of its files; a recording linked into two genres from outside, or hard-linked
    into two, has no one genre and is left out, each path with a line that says why."""
    lib = tmp_path / "lib"
    for i in range(3):
        _song(lib / "metal" / f"{i}.wav", decoded, start=2 * i)
        _song(lib / "blues" / f"{i}.wav", decoded, "classical_brahms_hungarian_dance_5.ogg", 2 * i)
    (lib / "playlist").symlink_to(lib / "metal", target_is_directory=True)
    os.link(lib / "metal" / "0.wav", lib / "metal" / "0-again.wav")  # one genre: extracted once
    os.link(lib / "metal" / "1.wav", lib / "blues" / "hard.wav")  # two genres
    _song(tmp_path / "outside.wav", decoded, start=20)
    for genre in ("blues", "metal"):
        (lib / genre / "outside.wav").symlink_to(tmp_path / "outside.wav")
    manifest = build_dataset(lib, tmp_path / "out", split_ratio="1/1", workers=1, progress=False)
    by_path = {f["path"]: f for f in manifest["files"]}
    extracted = sorted(p for p, f in by_path.items() if f["split"] is not None)
    assert extracted == ["blues/0.wav", "blues/1.wav", "blues/2.wav", "metal/0-again.wav", "metal/2.wav"]
    assert by_path["metal/0.wav"]["error"] == f"{lib / 'metal' / '0.wav'}: the same file as {lib / 'metal' / '0-again.wav'}, which is extracted instead"
    assert by_path["playlist/2.wav"]["split"] is None and by_path["playlist/2.wav"]["label"] == "playlist"
    for path in ["metal/1.wav", "blues/hard.wav", "playlist/1.wav", "blues/outside.wav", "metal/outside.wav"]:
        assert by_path[path]["error"].endswith("one recording in 2 genre folders (blues, metal), so of no one genre: "
                                               "left out (keep it in one)"), path
    assert set(np.load(tmp_path / "out" / "train" / "mfccs" / "labels.npy")) == {"blues", "metal"}


def test_a_genre_without_usable_audio_is_named_not_dropped_silently(tmp_path, decoded, capsys):
    for genre in ("blues", "rock"):
        for i in range(2):
            _song(tmp_path / "lib" / genre / f"{i}.wav", decoded, start=2 * i)
    (tmp_path / "lib" / "jazz").mkdir()  # empty
    (tmp_path / "lib" / "folk").mkdir()
    sf.write(tmp_path / "lib" / "folk" / "quiet.wav", np.zeros(2 * SAMPLE_RATE), SAMPLE_RATE)
    assert main(["extract", str(tmp_path / "lib"), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["genres"] == ["blues", "folk", "jazz", "rock"]
    assert capsys.readouterr().err.endswith(
        "note: folk, jazz: no clips (no audio, or every file unreadable, silent or left out: see the skipped lines), "
        "so those genres are not in the dataset\n")


def test_a_recording_from_outside_linked_into_two_genres_is_left_out_whatever_the_links_kind(tmp_path, decoded):
    """An album linked into classical/, one of its songs also linked from blues/ as a file: the song was
    labelled blues, because a file link ranked above a path through a linked folder."""
    lib, album = tmp_path / "lib", tmp_path / "album"
    for i in range(2):
        _song(lib / "blues" / f"{i}.wav", decoded, "classical_brahms_hungarian_dance_5.ogg", 2 * i)
        _song(lib / "classical" / f"{i}.wav", decoded, start=2 * i)
        _song(album / f"{i}.wav", decoded, start=10 + 2 * i)
    (lib / "classical" / "album").symlink_to(album, target_is_directory=True)
    (lib / "blues" / "favourite.wav").symlink_to(lib / "classical" / "album" / "0.wav")
    manifest = build_dataset(lib, tmp_path / "out", split_ratio="1/1", workers=1, progress=False)
    by_path = {f["path"]: f for f in manifest["files"]}
    for path in ("blues/favourite.wav", "classical/album/0.wav"):
        assert by_path[path]["error"].endswith("one recording in 2 genre folders (blues, classical), so of no one genre: "
                                               "left out (keep it in one)")
    assert by_path["classical/album/1.wav"]["split"] is not None  # linked into one genre only: its genre


def test_an_out_where_any_link_in_the_audio_folder_leads_is_refused(tmp_path, decoded):
    """Only the audio files found were protected: a linked folder of notes (no audio), a hidden link or a link to
    a file that is not audio could be replaced with --overwrite."""
    for genre in ("blues", "rock"):
        for i in range(2):
            _song(tmp_path / "lib" / genre / f"{i}.wav", decoded, start=2 * i)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("mine")
    (tmp_path / "lib" / "blues" / "notes").symlink_to(tmp_path / "notes", target_is_directory=True)
    (tmp_path / "stash").mkdir()
    (tmp_path / "lib" / "rock" / ".stash").symlink_to(tmp_path / "stash", target_is_directory=True)  # hidden: not walked
    (tmp_path / "doc.txt").write_text("mine")
    (tmp_path / "lib" / "rock" / "doc.txt").symlink_to(tmp_path / "doc.txt")  # not audio: not read
    for out, link in [(tmp_path / "notes", "blues/notes"), (tmp_path / "notes" / "new", "blues/notes"),
                      (tmp_path / "stash", "rock/.stash"), (tmp_path / "doc.txt", "rock/doc.txt")]:
        with pytest.raises(MusicGenreError, match=f"^{out}: overlaps the input {tmp_path / 'lib' / link}"):
            build_dataset(tmp_path / "lib", out, workers=1, progress=False, overwrite=True)
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "mine" and (tmp_path / "doc.txt").read_text() == "mine"


def test_a_split_asked_for_that_gets_no_files_is_named(tmp_path, decoded, capsys):
    """Two files per genre and three shares: the test split got none, without a word."""
    for genre in ("blues", "rock"):
        for i in range(2):
            _song(tmp_path / "lib" / genre / f"{i}.wav", decoded, start=2 * i)
    assert main(["extract", str(tmp_path / "lib"), "--out", str(tmp_path / "out"), "--split-ratio", "0.5/0.25/0.25",
                 "--workers", "1"]) == 0
    assert capsys.readouterr().err == ("note: the test split asked for (25%) holds no clips: no genre has enough files "
                                       "to give it one (files, not seconds, are split)\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "train", "val"]


def test_a_share_above_nothing_is_not_printed_as_nothing():
    from musicgenre.tables import percent

    assert [percent(x) for x in (0, 0.0001, 0.00397, 0.0577, 0.2, 0.996, 1)] == ["0%", "0.01%", "0.4%", "6%", "20%", "99.6%", "100%"]
