"""The Python API as a library user calls it: arguments of the wrong kind are one-line MusicGenreErrors, and
datasets, configurations and models that do not fit each other are refused rather than scored silently wrong."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from musicgenre.config import TrainConfig
from musicgenre.datasets import Dataset, load_dataset, load_split
from musicgenre.errors import MusicGenreError
from musicgenre.predict import READY_MODEL, predict_paths
from musicgenre.training import evaluate_model, train, train_seeds


@pytest.fixture(scope="module")
def mfcc(study_data):
    return load_dataset(study_data, "mfcc")


@pytest.mark.parametrize("change, message", [
    (lambda d: {"y": d.y + 10}, r"^train split of mfcc features: y holds class index 13, outside 0..3 \(4 classes\)$"),
    (lambda d: {"y": d.y - 1}, "y holds class index -1, outside 0..3"),
    (lambda d: {"y": np.where(d.y == 3, 4, d.y)}, r"y holds class index 4, outside 0\.\.3"),  # one past the last
    (lambda d: {"y": d.y.astype(float)}, "y must be 3200 whole-number class indices"),  # a multi-line numba error
    (lambda d: {"y": d.y[:-1]}, "y must be 3200 whole-number class indices .* got int64 \\(3199,\\)"),
    (lambda d: {"X": d.X[:, :20]}, r"mfcc array has shape \(3200, 20\), expected \(N, 26\)"),  # a torch error
    (lambda d: {"X": np.where(d.X == d.X[0, 0], np.nan, d.X)}, "rows hold NaN"),
    (lambda d: {"classes": ("a", "a", "b", "c")}, "classes must be distinct genre names"),
    (lambda d: {"features": "MFCC"}, "unknown features 'MFCC'"),
])
def test_a_dataset_made_in_python_is_checked_like_one_read_from_files(mfcc, change, message):
    """The fused epoch read past its arrays for labels out of range (a NaN loss, no error), torch raised."""
    with pytest.raises(MusicGenreError, match=message):
        dataclasses.replace(mfcc["train"], **change(mfcc["train"]))


def test_a_dataset_keeps_what_was_checked_when_the_caller_reuses_its_arrays(mfcc):
    """It held the caller's arrays: labels changed after it was made went unchecked, and the fused epoch read
    the logits out of bounds at class 9 (4 classes), training on what lay beyond them without a word."""
    train_set = mfcc["train"]
    X, y = train_set.X.copy(), train_set.y.copy()
    d = Dataset(X, y, train_set.classes, "mfcc", "train")
    y[:5], X[0, 0] = 9, np.nan  # the caller's buffers, reused
    assert d.y.max() == 3 and np.isfinite(d.X).all() and not np.shares_memory(d.y, y)
    cfg = TrainConfig(epochs=1, seed=0)
    assert train(cfg, d, mfcc["val"]).metrics == train(cfg, train_set, mfcc["val"]).metrics
    as_tensor = torch.from_numpy(train_set.y.copy())  # a torch tensor's memory too
    assert not np.shares_memory(Dataset(train_set.X, as_tensor, train_set.classes, "mfcc", "train").y, as_tensor.numpy())


def test_arrays_in_any_memory_layout_train_and_score(mfcc, tmp_path):
    """A reversed view (X[::-1]) was taken, then training and scoring crashed in torch ("negative strides"); a
    read-only mmap made torch warn in evaluate_model."""
    import warnings

    from musicgenre.baselines import BASELINES, fit_baseline
    from musicgenre.ensemble import evaluate_predictor, load_predictor
    from musicgenre.runs import save_run

    train_set, val = mfcc["train"], mfcc["val"]
    np.save(tmp_path / "X.npy", val.X)
    layouts = {
        "reversed": dataclasses.replace(train_set, X=train_set.X[::-1], y=train_set.y[::-1]),
        "strided": dataclasses.replace(train_set, X=np.asfortranarray(train_set.X)[::2], y=train_set.y[::2]),
        "read-only mmap": dataclasses.replace(val, X=np.load(tmp_path / "X.npy", mmap_mode="r")),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning of a read-only array as a failure
        for name, d in layouts.items():
            result = train(TrainConfig(epochs=3, lr=0.05, seed=0, standardize=True, fused=name != "strided"), d, val)
            assert result.metrics["accuracy"] > 0.5, name
            assert evaluate_model(result.model, d)["accuracy"] > 0.5, name
        run = save_run(result, tmp_path / "run")
        assert evaluate_predictor(load_predictor(run), layouts["read-only mmap"])["accuracy"] > 0.5
        assert fit_baseline(next(iter(BASELINES)), layouts["reversed"], 0).score(val.X, val.y) > 0.5
    assert np.array_equal(layouts["reversed"].X, train_set.X[::-1])  # the same rows, copied in order


def test_melgrams_outside_the_studys_decibel_range_are_refused(tmp_path):
    """Melgrams in linear power (0..1) trained without a word, then predict fed the model decibels."""
    from conftest import synthetic_melgrams, write_split

    X, labels = synthetic_melgrams(8)
    write_split(tmp_path, "train", "melgram", 10 ** (X / 10), labels)
    with pytest.raises(MusicGenreError, match=r"melgrams/X.npy: melgram values run from 1.000601e-08 to 0.9999405; the study's melgrams "
                                              r"\(and predict's\) are decibels relative to each second's peak, from -80 to 0$"):
        load_split(tmp_path, "train", "melgram")


def test_scores_and_training_refuse_splits_of_other_classes(mfcc):
    tr, va = mfcc["train"], mfcc["val"]
    reordered = Dataset(va.X, 3 - va.y, tuple(reversed(va.classes)), "mfcc", "val")  # the same labels, other order
    with pytest.raises(MusicGenreError, match="the val split's mfcc features of classes rock_metal_hardrock, hiphop, "
                                              "classical, blues do not match the train split's"):
        train(TrainConfig(epochs=1, seed=0), tr, reordered)
    result = train(TrainConfig(epochs=1, seed=0), tr, va)
    with pytest.raises(MusicGenreError, match=r"^the val split's classes \(rock_metal_hardrock, hiphop, classical, blues\) "
                                              r"are not the model's \(blues, classical, hiphop, rock_metal_hardrock\)"):
        evaluate_model(result.model, reordered, result.classes)
    two = Dataset(va.X[va.y < 2], va.y[va.y < 2], ("hiphop", "rock"), "mfcc", "val")  # scored as blues/classical
    with pytest.raises(MusicGenreError, match="^the model has 4 outputs and the val split 2 classes"):
        evaluate_model(result.model, two)
    assert evaluate_model(result.model, va, result.classes) == evaluate_model(result.model, va)


def test_one_path_as_a_string_is_one_path_not_its_characters(audio_dir):
    """predict_paths("song.mp3") classified every audio file on the disk, reached through "/" and "s"."""
    song = audio_dir / "rock_fma_001040.mp3"
    for arg in (str(song), song):
        [pred] = list(predict_paths(arg, workers=1))
        assert pred.path == song and pred.error is None
    with pytest.raises(MusicGenreError, match="^workers must be a whole number from 1 up"):
        list(predict_paths(song, workers=0))


def test_a_frozen_configuration_cannot_be_changed_unchecked():
    cfg = TrainConfig(epochs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = -5  # trained 0 epochs and returned an untrained model
    with pytest.raises(MusicGenreError, match="^epochs must be at least 1, not -5$"):
        dataclasses.replace(cfg, epochs=-5)
    assert TrainConfig(epochs=np.int64(3), lr=np.float32(0.5)).to_dict()["epochs"] == 3  # numpy numbers taken


def test_empty_splits_and_integer_samples_are_refused_and_names_as_bytes_taken(mfcc, audio_dir):
    va = mfcc["val"]
    with pytest.raises(MusicGenreError, match="^val split of mfcc features: no rows$"):  # torch.cat failed on it
        Dataset(va.X[:0], va.y[:0], va.classes, "mfcc", "val")
    from musicgenre.audio import resample

    with pytest.raises(MusicGenreError, match="floating-point samples .full scale 1.0., not int16"):  # soxr's TypeError
        resample(np.zeros(100, dtype=np.int16), 44100)
    assert resample(np.zeros(100, dtype=np.float16), 8000).dtype == np.float32
    song = audio_dir / "rock_fma_001040.mp3"
    [pred] = list(predict_paths(bytes(song), workers=1))
    assert pred.path == song and pred.error is None


def test_scoring_a_predictor_refuses_splits_of_other_genres_or_features(mfcc, tmp_path):
    """evaluate_predictor scored labels against another genre's output without a word (0.06 accuracy for a
    model of 0.72 with its genres reversed), and a predictor fed arrays of another shape raised torch's error."""
    from musicgenre.ensemble import evaluate_predictor, load_predictor
    from musicgenre.runs import save_run

    val = mfcc["val"]
    run = save_run(train(TrainConfig(epochs=2, seed=0), mfcc["train"], val), tmp_path / "run")
    predictor = load_predictor(run)
    reversed_genres = tuple(reversed(val.classes))
    relabelled = Dataset(val.X, len(val.classes) - 1 - val.y, reversed_genres, "mfcc", "val")
    with pytest.raises(MusicGenreError, match="are not what the model reads and predicts"):
        evaluate_predictor(predictor, relabelled)
    for X, message in [(val.X[:, :20], r"mfcc array has shape \(800, 20\)"), (np.full((2, 26), np.nan), "rows hold NaN")]:
        with pytest.raises(MusicGenreError, match=message):
            predictor.predict_proba(X)


def test_train_leaves_the_callers_generators_and_torch_settings_alone(mfcc):
    """train seeded Python's, numpy's and torch's generators and left them so (two calls made the caller's next
    draws equal); inference mode broke it, and a float64 default or the caller's autocast changed its result."""
    import torch

    cfg = dataclasses.replace(TrainConfig(epochs=2, seed=0), model="mfcc-mlp-log", optimizer="AdamW", mixup=1.0)
    want = train(cfg, mfcc["train"], mfcc["val"])
    np.random.seed(1)
    torch.manual_seed(1)
    draws = np.random.rand(), torch.rand(1)
    np.random.seed(1)
    torch.manual_seed(1)
    runs = []
    with torch.inference_mode():
        runs.append(train(cfg, mfcc["train"], mfcc["val"]))
    assert (np.random.rand(), torch.rand(1)) == draws
    torch.set_default_dtype(torch.float64)
    try:
        runs.append(train(cfg, mfcc["train"], mfcc["val"]))
    finally:
        torch.set_default_dtype(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        runs.append(train(cfg, mfcc["train"], mfcc["val"]))
        assert evaluate_model(want.model, mfcc["val"]) == want.metrics  # validated in float32 all the same
    for got in runs:
        assert all(torch.equal(p, q) for p, q in zip(got.model.state_dict().values(), want.model.state_dict().values()))


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_train_seeds_leaves_the_callers_generator_alone(mfcc, seeds):
    """train_seeds built a model outside its runs' own state to see which trainer takes it (fused, stacked),
    drawing its initial weights from the caller's generator, which train leaves as it was."""
    cfg = dataclasses.replace(TrainConfig(epochs=1), model="mfcc-mlp-log", optimizer="AdamW")  # stacked, not fused
    torch.manual_seed(1)
    draw = torch.rand(3)
    torch.manual_seed(1)
    train_seeds(cfg, seeds, mfcc["train"], mfcc["val"])
    assert torch.equal(torch.rand(3), draw)


def test_a_predictor_gives_no_rows_for_no_rows():
    """An empty array raised torch.cat's ValueError from deep inside."""
    from musicgenre.ensemble import load_predictor

    predictor = load_predictor(READY_MODEL)
    assert predictor.predict_proba(np.zeros((0, 26), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("call, message", [
    (lambda d: load_dataset(d, "mfcc", ("train", "vall")), "unknown split 'vall': choose among train, val, test"),
    (lambda d: Dataset(np.zeros((2, 26), np.float32), np.arange(2), "ab", "mfcc", "train"), "classes must be a list"),
    (lambda d: load_split(d, "val", "mfcc", "blues"), "classes must be a list of genre names, not 'blues'"),
])
def test_a_string_is_not_read_as_its_letters(study_data, call, message):
    """splits="val" loaded train alone (the splits 'v', 'a', 'l' do not exist), classes="ab" made genres a, b."""
    with pytest.raises(MusicGenreError, match=message):
        call(study_data)
    assert sorted(load_dataset(study_data, "mfcc", "val")) == ["train", "val"]


def test_seeds_and_genres_a_run_cannot_use_are_refused(mfcc):
    """Stacked seeds took [1, 1] (the same run twice) and gave numpy's or torch's errors for -1 or 2**32; one
    genre in memory trained a model that always answers it."""
    from musicgenre.training import train_seeds

    cfg = TrainConfig(epochs=1, seed=0, optimizer="Adam")  # seeds stacked into one model
    for seeds, message in [([1, 1], "distinct"), ([0, -1], "seed -1 out of range"), ([0, 2**32], "out of range"),
                           ([0.5], "seed 0.5 out of range"), ("01", "a list of whole numbers")]:
        with pytest.raises(MusicGenreError, match=message):
            train_seeds(cfg, seeds, mfcc["train"])
    assert [r.config.seed for r in train_seeds(cfg, np.arange(2), mfcc["train"])] == [0, 1]
    one = Dataset(mfcc["train"].X[:40], np.zeros(40, int), ("blues",), "mfcc", "train")
    with pytest.raises(MusicGenreError, match=r"holds clips of one genre only \('blues'\)"):
        train(cfg, one)


def test_what_is_not_a_path_is_refused_as_such(audio_dir):
    """load_run(None) raised os.fspath's TypeError; load_ensemble(b"runs/a") read its bytes as paths; predict_paths
    takes any iterable of paths (a glob), but not None."""
    from musicgenre.ensemble import load_ensemble
    from musicgenre.runs import load_run

    with pytest.raises(MusicGenreError, match=r"^None is not a path: give a str or a pathlib.Path$"):
        load_run(None)
    with pytest.raises(MusicGenreError, match="an ensemble takes a list of run directories, not one path"):
        load_ensemble(b"runs/a")
    with pytest.raises(MusicGenreError, match="^None: give a path, or a list of paths$"):
        list(predict_paths(None))
    assert [p.genre for p in predict_paths(audio_dir.glob("rock_*.mp3"), workers=1)] == ["rock_metal_hardrock"]


def test_api_mistakes_are_one_line_errors_naming_the_argument(mfcc, tmp_path):
    """A dict of splits for a Dataset, a Run for a Predictor, one string for a list (taken letter by letter), a sweep
    of True or 2.5 seeds (it trained, then crashed or wrote a folder that could not be read back), a run's `extra`
    replacing config.json's own keys (saved, then refused by load_run) or holding what JSON cannot."""
    from musicgenre.ensemble import evaluate_predictor
    from musicgenre.features import iter_file_features
    from musicgenre.runs import load_run, save_run
    from musicgenre.sweep import SweepConfig

    cfg, val = TrainConfig(epochs=1, seed=0), mfcc["val"]
    result = train(cfg, mfcc["train"], val)
    run = load_run(save_run(result, tmp_path / "run"))
    mistakes = [
        (lambda: train(cfg, mfcc), "train_set must be a Dataset, not dict: load_dataset gives a dict of splits"),
        (lambda: train(cfg, mfcc["train"], [val]), "val_set must be a Dataset, not list"),
        (lambda: train(cfg.to_dict(), mfcc["train"]), "the configuration must be a TrainConfig"),
        (lambda: evaluate_model(result.model, mfcc), "dataset must be a Dataset, not dict"),
        (lambda: evaluate_model(result.model, val, "blues"), "classes must be a list of genre names, not one name"),
        (lambda: evaluate_predictor(run, val), "predictor must be a Predictor .load_predictor.path., or Predictor..run..., not Run"),
        (lambda: list(iter_file_features("song.mp3", ("mfcc",), 1)), "paths must be a list of files, not one path"),
        (lambda: list(iter_file_features(["song.mp3"], "mfcc", 1)), "feature kinds must be a list among mfcc, melgram"),
        (lambda: SweepConfig(cfg, "data", ("SGD",), True), "--seeds must be a whole number of at least 1, not True"),
        (lambda: SweepConfig(cfg, "data", ("SGD",), 2.5), "--seeds must be a whole number of at least 1, not 2.5"),
        (lambda: SweepConfig(cfg, "data", "SGD", 1), "optimizers must be a list of optimizer names, not 'SGD'"),
        (lambda: SweepConfig(cfg, "data", ("SGD",), 1, "no"), "lr_per_optimizer must be True or False, not 'no'"),
        (lambda: save_run(result, tmp_path / "x", extra={"kind": "other"}), "extra: kind is config.json's own"),
        (lambda: save_run(result, tmp_path / "y", extra={"k": object()}), "config.json: cannot be written as JSON"),
    ]
    for mistake, message in mistakes:
        with pytest.raises(MusicGenreError, match=message) as err:
            mistake()
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing half-written
