"""The optimizer sweep on the real MFCC data: outputs, resume, configuration guard, lr rules, test split."""

from __future__ import annotations

import csv
import json

import matplotlib.image
import numpy as np
import pytest
import torch

from conftest import write_split
from musicgenre import sweep as sweep_mod
from musicgenre.cli import main
from musicgenre.datasets import load_split
from musicgenre.errors import MusicGenreError
from musicgenre.runs import load_run
from musicgenre.training import evaluate_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sweep_args(data, out, *extra):
    return ["sweep", "--data", str(data), "--out", str(out), "--epochs", "2", *extra]


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    h, w, channels = matplotlib.image.imread(path).shape
    assert h > 100 and w > 100 and channels in (3, 4)


@pytest.fixture
def spy_train_seeds(monkeypatch):
    """Record the optimizer of every train_seeds call the sweep makes."""
    calls = []
    real = sweep_mod.train_seeds

    def spy(cfg, seeds, *args, **kwargs):
        calls.append((cfg.optimizer, list(seeds)))
        return real(cfg, seeds, *args, **kwargs)

    monkeypatch.setattr(sweep_mod, "train_seeds", spy)
    return calls


def test_sweep_outputs_resume_and_config_guard(study_data, tmp_path, spy_train_seeds, capsys):
    out = tmp_path / "sweep"
    args = sweep_args(study_data, out, "--optimizers", "adam,sgd", "--seeds", "2")
    assert main(args) == 0
    assert spy_train_seeds == [("Adam", [0, 1]), ("SGD", [0, 1])]

    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert list(rows[0]) == sweep_mod.RESULT_FIELDS
    runs = [r for r in rows if r["seed"] not in ("mean", "std")]
    assert [(r["optimizer"], r["seed"]) for r in runs] == [("Adam", "0"), ("Adam", "1"), ("SGD", "0"), ("SGD", "1")]
    assert [(r["optimizer"], r["seed"]) for r in rows[4:]] == [("Adam", "mean"), ("Adam", "std"), ("SGD", "mean"), ("SGD", "std")]
    for opt, mean_row in [("Adam", rows[4]), ("SGD", rows[6])]:
        accs = [float(r["accuracy"]) for r in runs if r["optimizer"] == opt]
        assert float(mean_row["accuracy"]) == pytest.approx(np.mean(accs))
        assert all(0.0 <= a <= 1.0 for a in accs)

    # each seed's kept model is saved, with the data it was trained on, and scores what the CSV says
    run = load_run(out / "runs" / "Adam" / "seed-1")
    digest = json.loads((out / "sweep_config.json").read_text())["data_digest"]
    assert run.meta["data"] == {"root": str(study_data.resolve()), "splits": ["train", "val"], "digest": digest}
    val = load_split(study_data, "val", "mfcc", run.classes)
    assert evaluate_model(run.model, val)["accuracy"] == pytest.approx(float(runs[1]["accuracy"]))

    md = (out / "sweep.md").read_text()
    assert "lr: 0.002 for every optimizer" in md
    table = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "Optimizer" not in line]
    f1_mean = {r["optimizer"]: float(r["f1_macro"]) for r in rows if r["seed"] == "mean"}
    assert table == sorted(f1_mean, key=f1_mean.get, reverse=True)
    assert_png(out / "sweep.png")

    # resume: a finished optimizer is not retrained; an unfinished one is
    adam_done = out / "runs" / "Adam" / "results.json"
    mtime = adam_done.stat().st_mtime_ns
    (out / "runs" / "SGD" / "results.json").unlink()
    spy_train_seeds.clear()
    assert main(args) == 0
    assert spy_train_seeds == [("SGD", [0, 1])]
    assert adam_done.stat().st_mtime_ns == mtime
    assert list(csv.DictReader((out / "sweep.csv").open()))[4:] != []

    # a sweep written before a training option existed (here: precision) resumes with its default
    cfg_path = out / "sweep_config.json"
    saved = json.loads(cfg_path.read_text())
    del saved["base"]["precision"]
    cfg_path.write_text(json.dumps(saved))
    spy_train_seeds.clear()
    assert main(args) == 0
    assert spy_train_seeds == []

    # another configuration into the same directory: a one-line error, nothing trained
    capsys.readouterr()
    spy_train_seeds.clear()
    assert main(sweep_args(study_data, out, "--optimizers", "adam,sgd", "--seeds", "3")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sweep_config.json" in err and "(seeds 2, not 3)" in err
    assert main(sweep_args(study_data, out, "--optimizers", "adam,sgd", "--seeds", "2", "--epochs", "5")) == 2
    assert "(epochs 2, not 5); choose another --out" in capsys.readouterr().err  # a training setting, by its name
    assert spy_train_seeds == []


def test_tensorboard_scalars_are_the_history_and_a_resumed_optimizer_replaces_its_curves(small_mfcc_root, tmp_path):
    """Each seed's log holds its per-epoch loss and val scores; retraining it on resume replaces the log
    (one events file) rather than adding a second set of curves beside the first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "sweep"
    args = sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "1", "--epochs", "3")
    for _ in range(2):
        (out / "runs" / "SGD" / "results.json").unlink(missing_ok=True)  # the second pass retrains SGD
        assert main(args) == 0
    log = out / "tensorboard" / "SGD" / "seed-0"
    assert len(list(log.iterdir())) == 1
    events = EventAccumulator(str(log))
    events.Reload()
    history = json.loads((out / "runs" / "SGD" / "seed-0" / "history.json").read_text())
    for tag, key in [("loss/train", "loss"), ("val/accuracy", "val_accuracy"), ("val/f1_macro", "val_f1")]:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [h["epoch"] for h in history]
        assert [s.value for s in scalars] == pytest.approx([h[key] for h in history], rel=1e-6)
    assert not [p for p in log.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_library_sweep_without_progress_prints_nothing(study_data, tmp_path, capsys):
    """`run_sweep(progress=False)` is for callers that print their own: neither bar nor result lines."""
    from musicgenre.config import TrainConfig

    cfg = sweep_mod.sweep_config_from(TrainConfig(epochs=1), str(study_data), "adam", 1, False, "val")
    [result] = sweep_mod.run_sweep(cfg, tmp_path / "sweep", progress=False)
    assert result.optimizer == "Adam" and len(result.runs) == 1
    assert capsys.readouterr() == ("", "")


def test_default_lr_from_signature(monkeypatch):
    assert sweep_mod.default_lr("Adadelta", 0.5) == 1.0
    assert sweep_mod.default_lr("Adagrad", 0.5) == 0.01
    assert sweep_mod.default_lr("Adam", 0.5) == 0.001

    class NoDefault(torch.optim.SGD):
        def __init__(self, params, lr):
            super().__init__(params, lr=lr)

    monkeypatch.setattr(torch.optim, "NoDefault", NoDefault, raising=False)
    assert sweep_mod.default_lr("NoDefault", 0.123) == 0.123


def test_lr_per_optimizer(study_data, tmp_path):
    out = tmp_path / "sweep"
    assert main(sweep_args(study_data, out, "--optimizers", "adadelta", "--seeds", "1", "--lr-per-optimizer")) == 0
    saved = json.loads((out / "runs" / "Adadelta" / "results.json").read_text())
    assert saved["lr"] == 1.0
    assert load_run(out / "runs" / "Adadelta" / "seed-0").config.lr == 1.0
    assert "own default" in (out / "sweep.md").read_text()


def test_test_split_evaluates_kept_models_on_test(study_data, tmp_path, capsys):
    root = tmp_path / "data"
    Xt, lt = np.load(study_data / "train/mfccs/X.npy"), np.load(study_data / "train/mfccs/labels.npy")
    Xv, lv = np.load(study_data / "val/mfccs/X.npy"), np.load(study_data / "val/mfccs/labels.npy")
    it, iv = np.random.default_rng(0).permutation(len(Xt))[:800], np.random.default_rng(1).permutation(len(Xv))
    write_split(root, "train", "mfcc", Xt[it], lt[it])
    write_split(root, "val", "mfcc", Xv[iv[:400]], lv[iv[:400]])
    out = tmp_path / "sweep"
    assert main(sweep_args(root, out, "--optimizers", "adam", "--seeds", "1", "--split", "test")) == 2
    assert "no test split" in capsys.readouterr().err

    write_split(root, "test", "mfcc", Xv[iv[400:]], lv[iv[400:]])
    out = tmp_path / "sweep-test"
    assert main(sweep_args(root, out, "--optimizers", "adam", "--seeds", "1", "--split", "test")) == 0
    saved = json.loads((out / "runs" / "Adam" / "results.json").read_text())
    run = load_run(out / "runs" / "Adam" / "seed-0")
    test = load_split(root, "test", "mfcc", run.classes)
    assert saved["runs"][0]["accuracy"] == pytest.approx(evaluate_model(run.model, test)["accuracy"])
    assert "test split" in (out / "sweep.md").read_text()


@pytest.mark.parametrize("name, text, message", [
    ("runs/SGD/results.json", "{}", "runs/SGD/results.json: 'lr' is missing"),
    ("runs/SGD/results.json", '{"lr": 0.002, "runs": [{"x": 1}]}', "runs/SGD/results.json: run 1: 'optimizer' is missing"),
    ("runs/SGD/results.json", '{"lr": 0.002, "runs": []}', r"runs/SGD/results.json: holds seeds \[\], not the sweep's 0..0"),
    ("runs/SGD/results.json", '{"lr": NaN, "runs": []}', "runs/SGD/results.json: 'lr' is NaN, expected a number"),  # Python's JSON takes NaN
    ("sweep_config.json", "[1]", "sweep_config.json: not a musicgenre sweep configuration"),
])
def test_corrupted_sweep_dir_is_one_line_for_resume_and_report(small_mfcc_root, tmp_path, spy_train_seeds, capsys, name, text, message):
    from musicgenre.report import build_report

    out = tmp_path / "sweep"
    args = sweep_args(small_mfcc_root, out, "--optimizers", "sgd,adam", "--seeds", "1", "--epochs", "1")
    assert main(args) == 0
    (out / name).write_text(text)
    spy_train_seeds.clear()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message.split(":")[0] in err
    assert spy_train_seeds == []  # checked before anything is trained
    with pytest.raises(MusicGenreError, match=message):
        build_report(out, tmp_path / "rep")


def test_unknown_result_field_is_named(small_mfcc_root, tmp_path):
    out = tmp_path / "sweep"
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "1", "--epochs", "1")) == 0
    done = out / "runs" / "SGD" / "results.json"
    saved = json.loads(done.read_text())
    saved["runs"][0]["x"] = 1
    done.write_text(json.dumps(saved))
    with pytest.raises(MusicGenreError, match=r"results.json: run 1: unknown field\(s\) x"):
        sweep_mod.load_sweep(out)


def test_failed_sweep_leaves_nothing_that_blocks_the_corrected_command(small_mfcc_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "1", "--epochs", "1", "--split", "test")) == 2
    assert "no test split" in capsys.readouterr().err and not out.exists()
    X = np.load(small_mfcc_root / "train/mfccs/X.npy")
    X[3, 0] = np.nan
    np.save(small_mfcc_root / "train/mfccs/X.npy", X)
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "1", "--epochs", "1")) == 2
    assert "X.npy" in capsys.readouterr().err and not out.exists()
    X[3, 0] = 0
    np.save(small_mfcc_root / "train/mfccs/X.npy", X)
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "1", "--epochs", "1")) == 0


def test_repeated_optimizer_is_refused(small_mfcc_root, tmp_path, spy_train_seeds, capsys):
    assert main(sweep_args(small_mfcc_root, tmp_path / "sweep", "--optimizers", "SGD,adam,sgd", "--seeds", "1")) == 2
    assert capsys.readouterr().err == "error: musicgenre sweep: optimizers: SGD listed more than once (see musicgenre sweep --help)\n"
    assert spy_train_seeds == [] and not (tmp_path / "sweep").exists()


def test_weight_decay_with_an_optimizer_without_it_is_refused_before_training(small_mfcc_root, tmp_path,
                                                                              spy_train_seeds, capsys):
    """Rprop has no weight decay: a sweep of a recipe with it stopped at Rprop, after training the others."""
    out = tmp_path / "sweep"
    assert main(sweep_args(small_mfcc_root, out, "--model", "mfcc-mlp-plus", "--optimizers", "adam,rprop,sgd")) == 2
    assert capsys.readouterr().err == ("error: musicgenre sweep: weight decay 0.01 is set and Rprop has none: sweep --optimizers "
                                       "Adam,SGD, or pass --weight-decay 0 (see musicgenre sweep --help)\n")
    assert main(sweep_args(small_mfcc_root, out, "--model", "mfcc-mlp-plus", "--optimizers", "rprop")) == 2
    assert capsys.readouterr().err == ("error: musicgenre sweep: weight decay 0.01 is set and Rprop has none: pass --weight-decay 0 "
                                       "(see musicgenre sweep --help)\n")
    assert spy_train_seeds == [] and not out.exists()
    (small_mfcc_root / "val").rename(small_mfcc_root / "test")  # scored on test, with no val to stop on
    assert main(sweep_args(small_mfcc_root, out, "--split", "test", "--patience", "2", "--optimizers", "sgd")) == 2
    assert "there is no val split to score" in capsys.readouterr().err
    assert spy_train_seeds == [] and not out.exists()


def test_test_clips_the_model_cannot_score_stop_the_sweep_with_one_line(small_mfcc_root, tmp_path, capsys):
    """Outputs that are not numbers were scored as the first class and recorded as the optimizer's result."""
    import shutil

    shutil.copytree(small_mfcc_root / "val", small_mfcc_root / "test")
    X = np.load(small_mfcc_root / "test/mfccs/X.npy")
    X[:] = np.where(np.arange(26) % 2, 3e38, -3e38)
    np.save(small_mfcc_root / "test/mfccs/X.npy", X)
    out = tmp_path / "sweep"
    assert main(sweep_args(small_mfcc_root, out, "--split", "test", "--optimizers", "sgd", "--seeds", "1", "--epochs", "1")) == 2
    assert capsys.readouterr().err == ("error: the model's outputs on 400 of the 400 test clips are NaN or infinite "
                                       "(first: clip 0), so they cannot be scored\n")
    assert not (out / "runs" / "SGD" / "results.json").exists()


def test_a_sweep_resumed_on_changed_data_is_refused(small_mfcc_root, tmp_path, capsys):
    """Resumed after the arrays under the same root changed, a sweep mixed optimizers trained on two datasets."""
    out = tmp_path / "sweep"
    args = sweep_args(small_mfcc_root, out, "--optimizers", "sgd,adam", "--seeds", "1", "--epochs", "1")
    assert main(args) == 0
    (out / "runs" / "Adam" / "results.json").unlink()  # as a sweep stopped after SGD leaves it
    labels = np.load(small_mfcc_root / "val/mfccs/labels.npy")
    np.save(small_mfcc_root / "val/mfccs/labels.npy", labels[::-1])
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {out}: holds a sweep begun on other data: what {small_mfcc_root.resolve()} "
                                       "holds has changed since; choose another --out, or delete it to start over\n")
    np.save(small_mfcc_root / "val/mfccs/labels.npy", labels)
    assert main(args) == 0 and (out / "runs" / "Adam" / "results.json").is_file()
    saved = json.loads((out / "sweep_config.json").read_text())
    digest = saved.pop("data_digest")
    (out / "sweep_config.json").write_text(json.dumps(saved))  # as an earlier version wrote it: adopted, and
    assert main(args) == 0  # fingerprinted from then on
    assert json.loads((out / "sweep_config.json").read_text())["data_digest"] == digest


def test_a_sweep_resumed_on_another_number_of_cpu_threads_is_refused(small_mfcc_root, tmp_path, capsys, monkeypatch):
    """Resumed under another MUSICGENRE_THREADS, a sweep mixed runs whose sums ran in two orders (other weights)."""
    out = tmp_path / "sweep"
    args = sweep_args(small_mfcc_root, out, "--optimizers", "sgd,adam", "--seeds", "1", "--epochs", "1")
    assert main(args) == 0
    saved = json.loads((out / "sweep_config.json").read_text())
    assert saved["trained_on"]["Adam"] == {"device": "cpu", "cpu_threads": 1}  # an MFCC model: one thread
    assert saved["versions"]["torch"] == torch.__version__
    monkeypatch.setenv("MUSICGENRE_THREADS", "2")
    assert main(args) == 0  # finished: read back, not trained again
    (out / "runs" / "Adam" / "results.json").unlink()  # as a sweep stopped after SGD leaves it
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {out}: holds a sweep whose Adam runs were to train on the CPU with 1 "
                                       "thread, and here they would train on the CPU with 2 threads, which sums in another "
                                       "order (other weights): set MUSICGENRE_THREADS=1 to resume it, or choose another --out\n")
    monkeypatch.setenv("MUSICGENRE_THREADS", "1")
    assert main(args) == 0 and (out / "runs" / "Adam" / "results.json").is_file()


def test_a_sweep_resumed_on_another_device_is_refused_and_an_earlier_versions_folder_is_adopted(small_mfcc_root, tmp_path,
                                                                                                capsys):
    """Begun on a GPU machine (device auto) and resumed on a CPU one, a sweep mixed runs of both (other weights);
    SGD, which the fused CPU epoch trains even where a GPU is, is recorded on the CPU (no refusal there)."""
    out = tmp_path / "sweep"
    args = sweep_args(small_mfcc_root, out, "--optimizers", "sgd,adam", "--seeds", "1", "--epochs", "1")
    assert main(args) == 0
    path = out / "sweep_config.json"
    saved = json.loads(path.read_text())
    here = saved["trained_on"]["Adam"]
    assert saved["trained_on"]["SGD"]["device"] == "cpu"
    (out / "runs" / "Adam" / "results.json").unlink()
    other = {"device": "cpu", "cpu_threads": 1} if here["device"] == "cuda" else {"device": "cuda"}
    path.write_text(json.dumps({**saved, "trained_on": {**saved["trained_on"], "Adam": other}}))
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: {out}: holds a sweep whose Adam runs were to train on ")
    old = {k: v for k, v in saved.items() if k != "trained_on"}
    path.write_text(json.dumps({**old, "cpu_threads": 1, "versions": {"torch": "2.2.0"}}))  # as an earlier version wrote it
    assert main(args) == 0 and (out / "runs" / "Adam" / "results.json").is_file()
    assert json.loads(path.read_text()) == {**old, "trained_on": saved["trained_on"], "versions": {"torch": "2.2.0"}}


def test_an_optimizer_that_diverges_at_once_is_a_result_not_a_crash(small_mfcc_root, tmp_path):
    # The study reports optimizers that collapse; a NaN loss in epoch 1 keeps the initial weights (epoch 0).
    out = tmp_path / "sweep"
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd", "--seeds", "2", "--lr", "1e10")) == 0
    runs = json.loads((out / "runs" / "SGD" / "results.json").read_text())["runs"]
    assert [r["best_epoch"] for r in runs] == [0, 0]
    assert "0: the initial weights, kept where training diverged in epoch 1" in (out / "sweep.md").read_text()


def test_lr_and_lr_per_optimizer_together_are_refused_before_training(study_data, tmp_path, spy_train_seeds, capsys):
    """--lr-per-optimizer replaces every learning rate, so an --lr beside it would be silently ignored."""
    out = tmp_path / "sweep"
    assert main(sweep_args(study_data, out, "--lr", "0.1", "--lr-per-optimizer", "--optimizers", "sgd")) == 2
    assert "--lr and --lr-per-optimizer: choose one" in capsys.readouterr().err
    assert main(sweep_args(study_data, out, "--seed", "7", "--optimizers", "sgd")) == 2  # seeds are 0..N-1
    assert "--seed 7 is not taken: a sweep trains seeds 0..N-1" in capsys.readouterr().err
    assert main(sweep_args(study_data, out, "--optimizer", "Adam", "--optimizers", "sgd")) == 2  # was trained as SGD
    assert "--optimizer Adam is not taken: a sweep trains each optimizer of --optimizers" in capsys.readouterr().err
    assert spy_train_seeds == [] and not out.exists()


def test_a_sweep_where_no_folder_can_be_made_is_refused_first_and_leaves_none(small_mfcc_root, tmp_path, capsys):
    """A name too long in the middle of --out: the sweep made the folders above it, then failed to write its
    sweep_config.json with the raw error, leaving them behind."""
    out = tmp_path / "a" / ("z" * 300) / "x"
    assert main(sweep_args(small_mfcc_root, out, "--optimizers", "sgd")) == 2
    assert capsys.readouterr().err == f"error: {out}: cannot be written (File name too long in {tmp_path / 'a'}; choose another --out)\n"
    assert list(tmp_path.iterdir()) == [small_mfcc_root]
