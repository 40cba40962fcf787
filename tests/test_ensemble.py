"""Ensembles of real runs, the predictor spec, temperature scaling, and the best recipe's accuracy."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from musicgenre.cli import main
from musicgenre.config import RECIPES
from musicgenre.datasets import Dataset, load_dataset, load_split
from musicgenre.ensemble import calibrate_run, evaluate_predictor, load_ensemble, load_predictor
from musicgenre.errors import MusicGenreError
from musicgenre.report import build_report
from musicgenre.runs import load_run, save_run
from musicgenre.training import train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "music_genre_data_di"
BEST = "mfcc-mlp-log"


@pytest.fixture(scope="module")
def mfcc():
    return load_dataset(DATA, "mfcc")


@pytest.fixture(scope="module")
def runs(mfcc, tmp_path_factory):
    """Two quick real runs of the best recipe (different seeds) saved as run directories."""
    root = tmp_path_factory.mktemp("runs")
    cfg = replace(RECIPES[BEST], epochs=8)
    return [save_run(train(replace(cfg, seed=s), mfcc["train"], mfcc["val"]), root / f"seed{s}") for s in (0, 1)]


def test_best_recipe_beats_the_study_on_real_data(mfcc):
    result = train(replace(RECIPES[BEST], seed=0), mfcc["train"], mfcc["val"])
    assert result.metrics["accuracy"] > 0.72  # the study's MFCC net: 0.621


def test_ensemble_averages_member_probabilities(runs, mfcc):
    pair = load_predictor(f"ensemble:{runs[0]},{runs[1]}")
    singles = [load_predictor(r) for r in runs]
    X = mfcc["val"].X
    probs = pair.predict_proba(X)
    assert probs.shape == (len(X), 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.allclose(probs, (singles[0].predict_proba(X) + singles[1].predict_proba(X)) / 2, atol=1e-6)
    assert pair.classes == mfcc["train"].classes and pair.features == "mfcc"
    assert evaluate_predictor(pair, mfcc["val"])["accuracy"] > 0.65


def test_ensemble_of_mismatched_runs_is_a_one_line_error(runs, mfcc, tmp_path):
    train_set = mfcc["train"]
    renamed = Dataset(train_set.X, train_set.y, ("a", "b", "c", "d"), "mfcc", "train")
    other = save_run(train(replace(RECIPES["mfcc-mlp"], epochs=1, seed=0), renamed), tmp_path / "other")
    with pytest.raises(MusicGenreError, match="ensemble members must agree") as err:
        load_ensemble([runs[0], other])
    assert "\n" not in str(err.value)


def test_the_same_run_twice_is_not_an_ensemble(runs):
    with pytest.raises(MusicGenreError, match="given twice; an ensemble averages different runs"):
        load_ensemble([runs[0], runs[1], runs[0].parent / ".." / runs[0].parent.name / runs[0].name])


def test_nll_is_exact_where_a_probability_rounds_to_zero(runs, mfcc):
    """A run certain of wrong genres (its last layer's weights scaled up) gives probabilities that round to 0 in
    float32: its NLL is still the cross-entropy of its logits, not capped (a clip at 1e-12 gave 27.6), and an
    ensemble's is the log of its members' mean probability, computed in float64 here."""
    import torch
    from torch.nn import functional as F

    from musicgenre.ensemble import Predictor
    from musicgenre.training import predict_logits

    val = mfcc["val"]
    members = [load_run(r) for r in runs]
    with torch.no_grad():
        [m for m in members[0].model.body.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(300)
    logits = [predict_logits(m.model, torch.from_numpy(val.X)).double() for m in members]
    y = torch.from_numpy(val.y)
    single = evaluate_predictor(Predictor(members[:1]), val)
    assert (logits[0].softmax(1).float()[torch.arange(len(y)), y] == 0).any()  # what a clip or log(0) met
    assert single["nll"] == pytest.approx(float(F.cross_entropy(logits[0], y)), rel=1e-5) and single["nll"] > 100
    pair = evaluate_predictor(Predictor(members), val)
    mean_p = (logits[0].softmax(1) + logits[1].softmax(1)) / 2
    assert pair["nll"] == pytest.approx(float(-mean_p[torch.arange(len(y)), y].log().mean()), rel=1e-5)
    assert pair["accuracy"] == pytest.approx(float((mean_p.argmax(1) == y).double().mean()))


def test_ensemble_cli_json(runs, capsys):
    assert main(["ensemble", str(runs[0]), str(runs[1]), "--data", str(DATA), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "val" and len(out["runs"]) == 2 and 0.65 < out["accuracy"] <= 1


def test_calibration_fits_and_stores_the_temperature(mfcc, tmp_path, capsys):
    run = save_run(train(replace(RECIPES[BEST], epochs=8, seed=2), mfcc["train"], mfcc["val"]), tmp_path / "run")
    before = evaluate_predictor(load_predictor(run), mfcc["val"])
    assert main(["calibrate", str(run), "--data", str(DATA)]) == 0
    after = evaluate_predictor(load_predictor(run), mfcc["val"])
    report = json.loads((run / "metrics.json").read_text())["calibration"]
    t = float(load_file(str(run / "model.safetensors"))["temperature"])
    assert t == pytest.approx(report["temperature"]) and t != 1.0
    assert after["nll"] <= before["nll"] + 1e-6
    assert report["nll_after"] <= report["nll_before"] + 1e-6
    assert report["nll_before"] == pytest.approx(before["nll"], abs=1e-4)
    assert after["accuracy"] == before["accuracy"]  # a temperature never changes the predicted class
    assert "ECE" in capsys.readouterr().out
    md = (build_report(run, tmp_path / "rep") / "report.md").read_text()
    assert (f"temperature of {t:.3f}, fitted on the val split: NLL {report['nll_before']:.3f} -> {report['nll_after']:.3f}, "
            f"expected calibration error {report['ece_before']:.3f} -> {report['ece_after']:.3f}") in md
    # calibrating again refits from the uncalibrated outputs: the same T to the bit, and "before" still the
    # uncalibrated model (T came out 1 ulp apart when the stored one was multiplied back in)
    weights = (run / "model.safetensors").read_bytes()
    assert main(["calibrate", str(run), "--data", str(DATA)]) == 0
    again = json.loads((run / "metrics.json").read_text())["calibration"]
    assert again == report and (run / "model.safetensors").read_bytes() == weights


@pytest.fixture
def tiny_run(small_mfcc_root, tmp_path):
    """A one-epoch run on a small slice of the real MFCC data, and that data root."""
    root = small_mfcc_root
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--seed", "0"]) == 0
    return tmp_path / "run", root


def test_without_data_a_run_is_scored_on_the_root_it_recorded(tiny_run, capsys, monkeypatch):
    """$MUSICGENRE_DATA (here the study's 800 val clips) scored a run trained on another root on data not its own."""
    run, root = tiny_run
    monkeypatch.setenv("MUSICGENRE_DATA", str(DATA))
    capsys.readouterr()
    for args in (["evaluate", str(run)], ["ensemble", str(run), str(run.parent / "run2")]):
        if args[0] == "ensemble":
            assert main(["train", "--data", str(root), "--out", args[-1], "--epochs", "1", "--seed", "1"]) == 0
            capsys.readouterr()
        assert main([*args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["data"], out["n"]) == (str(root.resolve()), 400)  # its own val split, not the study's 800
    assert main(["calibrate", str(run)]) == 0 and json.loads((run / "metrics.json").read_text())["calibration"]["n"] == 400
    capsys.readouterr()
    shutil.move(root, root.parent / "moved")  # the recorded root gone: $MUSICGENRE_DATA, as before, saying so
    assert main(["evaluate", str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    assert (json.loads(out)["data"], json.loads(out)["n"]) == (str(DATA), 800)
    assert err == (f"note: {run} recorded {root.resolve()} as its data root, which holds no train/ folder now: "
                   "taking $MUSICGENRE_DATA's instead (pass --data to choose)\n")
    config = json.loads((run / "config.json").read_text())
    config["data"]["root"] = "/" + "a" * 300  # a name too long to look up: gone as well, not Python's errno
    (run / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run), "--json"]) == 0
    assert "which holds no train/ folder now" in capsys.readouterr().err
    monkeypatch.delenv("MUSICGENRE_DATA")  # nothing else to take: one line, not a note that takes nothing, then an error
    for args in (["evaluate", str(run)], ["calibrate", str(run)]):
        assert main(args) == 2
        assert capsys.readouterr() == ("", f"error: {run} recorded /{'a' * 300} as its data root, which holds no train/ "
                                           "folder now, and no other was given: pass --data ROOT (or set $MUSICGENRE_DATA)\n")


def run_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def test_calibrating_infinite_outputs_is_one_line_and_changes_nothing(tiny_run, capsys):
    from safetensors.torch import save_file

    run, root = tiny_run
    state = load_file(str(run / "model.safetensors"))
    state["body.layers.4.weight"].fill_(3e38)  # finite weights, infinite logits
    save_file(state, str(run / "model.safetensors"), metadata={"musicgenre-run": "mfcc-mlp"})
    before = run_files(run)
    capsys.readouterr()
    assert main(["calibrate", str(run), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors: the model's outputs on the val split are NaN or infinite" in err
    assert run_files(run) == before


def test_a_val_split_without_errors_is_not_fitted_to_a_temperature_near_zero(tiny_run, tmp_path, capsys):
    """Every clip right: the NLL falls as T -> 0; a T of 0.004 was stored and made every prediction 1.00."""
    run, trained_on = tiny_run
    root = shutil.copytree(trained_on, tmp_path / "other")  # changed under its own root, calibrate refuses it anyway
    val = load_dataset(root, "mfcc")["val"]
    right = load_predictor(run).predict_proba(val.X).argmax(1) == val.y
    np.save(root / "val/mfccs/X.npy", val.X[right])
    np.save(root / "val/mfccs/labels.npy", np.array(val.classes)[val.y[right]])
    before = run_files(run)
    capsys.readouterr()
    assert main(["calibrate", str(run), "--data", str(root)]) == 2
    assert "the model gets every clip of the val split right, so no temperature fits it" in capsys.readouterr().err
    assert run_files(run) == before


def test_calibrate_writes_weights_and_metrics_or_neither(tiny_run, monkeypatch, capsys):
    import musicgenre.ensemble as ensemble

    run, root = tiny_run
    metrics = run / "metrics.json"
    good = metrics.read_text()
    metrics.write_text("[1]")
    before = run_files(run)
    assert main(["calibrate", str(run), "--data", str(root)]) == 2
    assert "metrics.json: expected a JSON object" in capsys.readouterr().err
    assert run_files(run) == before

    metrics.write_text(good)
    before = run_files(run)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ensemble, "atomic_write_json", fail)
    capsys.readouterr()
    assert main(["calibrate", str(run), "--data", str(root)]) == 1
    assert capsys.readouterr().err == "error: disk full\n"
    assert run_files(run) == before  # the new temperature was taken back out of the weights
    loaded = load_run(run, averaged=False)
    with pytest.raises(OSError, match="disk full"):
        calibrate_run(loaded, load_split(root, "val", "mfcc", loaded.classes))
    assert float(loaded.model.temperature) == 1.0  # and out of the run in memory, as its files have it


def test_the_shipped_model_trained_on_val_is_not_calibrated_on_it_and_its_val_figures_are_flagged(tmp_path, capsys):
    """The ready model was trained on train+val: a temperature fitted on val would fit its own training data,
    and its val accuracy is a training figure, which evaluate and ensemble say on stderr."""
    from musicgenre.predict import READY_MODEL

    ready = tmp_path / "ready"
    shutil.copytree(READY_MODEL, ready)
    before = run_files(ready)
    capsys.readouterr()
    assert main(["calibrate", str(ready), "--data", str(DATA)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{ready}: trained on the val split" in err
    assert run_files(ready) == before
    for command in (["evaluate", str(ready)], ["ensemble", str(ready)]):
        assert main([*command, "--data", str(DATA), "--split", "val"]) == 0
        assert f"note: {ready} was trained on the val split" in capsys.readouterr().err
        assert main([*command, "--data", str(DATA), "--split", "train"]) == 0
        assert "note:" in capsys.readouterr().err
    from musicgenre.runs import held_out_notes  # the same, for a caller of the API

    assert held_out_notes([load_run(ready)], "val", DATA) == [f"{ready} was trained on the val split: its figures there "
                                                             "are not a held-out estimate"]


def test_a_run_trained_on_train_alone_gets_no_note(tiny_run, capsys):
    run, root = tiny_run
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(root), "--split", "val"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_a_stop_while_calibrating_leaves_weights_and_metrics_in_step(tiny_run, stop_after_rename):
    """A stop just after metrics.json was renamed into place put the old weights back (T = 1) under a
    metrics.json that recorded the new temperature."""
    run, root = tiny_run
    stop_after_rename.at = 2  # the weights' rename (1), metrics.json's (2)
    assert main(["calibrate", str(run), "--data", str(root)]) == 130  # "interrupted"
    stored = float(load_file(str(run / "model.safetensors"))["temperature"])
    assert stored != 1.0 and stored == pytest.approx(load_run(run).metrics["calibration"]["temperature"])


def test_data_changed_since_training_is_noted_by_evaluate_and_refused_by_calibrate(small_mfcc_root, tmp_path, capsys):
    """Re-extracting under the same root with another seed puts training files in val: evaluate scored them as
    held out and calibrate fitted its temperature on them, without a word (config.json records the arrays'
    fingerprint)."""
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--epochs", "2", "--seed", "0", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--data", str(small_mfcc_root)]) == 0
    assert "note:" not in capsys.readouterr().err  # the same arrays: nothing to say
    train_X, val_X = (np.load(small_mfcc_root / s / "mfccs" / "X.npy") for s in ("train", "val"))
    np.save(small_mfcc_root / "val" / "mfccs" / "X.npy", np.concatenate([train_X[:200], val_X[200:]]))
    for command in (["evaluate", str(run)], ["ensemble", str(run), str(run.parent / "other")]):
        if command[0] == "ensemble":
            shutil.copytree(run, run.parent / "other")
        assert main([*command, "--data", str(small_mfcc_root)]) == 0
        err = capsys.readouterr().err
        assert f"note: {small_mfcc_root} has changed since {run} was trained on it" in err, err
    weights = (run / "model.safetensors").read_bytes()
    assert main(["calibrate", str(run), "--data", str(small_mfcc_root)]) == 2
    assert "has changed since" in capsys.readouterr().err and (run / "model.safetensors").read_bytes() == weights
    other_root = tmp_path / "elsewhere"
    shutil.copytree(small_mfcc_root, other_root)  # another root: nothing recorded to compare with
    assert main(["evaluate", str(run), "--data", str(other_root)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_calibrating_on_a_split_of_other_genres_is_refused_as_evaluating_it_is(tiny_run, mfcc):
    from musicgenre.ensemble import calibrate_run

    run = load_run(tiny_run[0])
    val = mfcc["val"]
    reordered = Dataset(val.X, val.y, tuple(reversed(val.classes)), val.features, val.split)  # the same labels, other genres
    message = "the val split's mfcc features of classes rock_metal_hardrock, hiphop, classical, blues are not what the model"
    for score in (lambda: evaluate_predictor(load_predictor(run.path), reordered), lambda: calibrate_run(run, reordered)):
        with pytest.raises(MusicGenreError, match=message):
            score()
    assert load_run(run.path).model.temperature == 1  # nothing stored
