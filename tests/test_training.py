"""The training loop on the study's real MFCC data: repeatable, keeps the best epoch, learns."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from conftest import STUDY_DATA, subset
from musicgenre.config import OPTIMIZERS, WITHOUT_WEIGHT_DECAY, TrainConfig, recipe
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.errors import MusicGenreError
from musicgenre.cli import main
from musicgenre.metrics import macro_f1
from musicgenre.models import GenreNet, build_model
from musicgenre.multiseed import StackedChain
from musicgenre.runs import load_run, save_run
from musicgenre.training import (
    BestKeeper,
    batch_sizes,
    evaluate_model,
    make_optimizer,
    make_scheduler,
    seed_everything,
    train,
    train_seeds,
    train_threads,
    val_scores,
)


@pytest.fixture(scope="session")
def mfcc(study_data) -> dict[str, Dataset]:
    return load_dataset(study_data, "mfcc", ("train", "val"))


def history_without_time(result) -> list[dict]:
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in result.history]


def test_same_seed_same_run(mfcc):
    cfg = TrainConfig(epochs=4, seed=7, device="cpu", optimizer="adam", lr=0.003, standardize=True, scheduler="cosine")
    tr, va = subset(mfcc["train"], 800), mfcc["val"]
    a, b = train(cfg, tr, va), train(cfg, tr, va)
    assert history_without_time(a) == history_without_time(b)
    assert a.metrics == b.metrics and a.best_epoch == b.best_epoch
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    c = train(TrainConfig(**{**cfg.to_dict(), "seed": 8}), tr, va)
    assert history_without_time(c) != history_without_time(a)


def test_a_tie_in_validation_f1_keeps_the_earlier_epoch():
    keeper = BestKeeper(patience=2)
    assert keeper.improved(1, 0.61) and not keeper.improved(2, 0.61)
    assert (keeper.best_epoch, keeper.since_best, keeper.stop) == (1, 1, False)
    assert not keeper.improved(3, 0.60) and keeper.stop


def test_best_epoch_is_kept_not_the_last(mfcc, tmp_path):
    # A large Adam step on unstandardised MFCCs makes validation F1 jump around, so the last epoch is not the best.
    cfg = TrainConfig(epochs=6, seed=3, device="cpu", optimizer="adam", lr=0.05)
    tr, va = subset(mfcc["train"], 800), mfcc["val"]
    result = train(cfg, tr, va)
    f1s = [r.val_f1 for r in result.history]
    assert f1s[-1] < max(f1s), "the case must have a later, worse epoch"
    assert result.best_epoch == int(np.argmax(f1s)) + 1
    assert result.metrics["f1_macro"] == pytest.approx(max(f1s), abs=1e-12)
    assert result.metrics["accuracy"] == pytest.approx(result.history[result.best_epoch - 1].val_accuracy, abs=1e-12)
    saved = load_run(save_run(result, tmp_path / "run"))
    assert evaluate_model(saved.model, va)["f1_macro"] == pytest.approx(max(f1s), abs=1e-12)


def test_patience_stops_early(mfcc):
    cfg = TrainConfig(epochs=30, seed=3, device="cpu", optimizer="adam", lr=0.05, patience=2)
    result = train(cfg, subset(mfcc["train"], 800), mfcc["val"])
    assert len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2
    with pytest.raises(MusicGenreError, match="^patience .* there is no val split to score"):  # was ignored
        train(cfg, subset(mfcc["train"], 800))


def test_val_scores_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    preds = rng.integers(0, 3, (2, 5, 300))  # class 3 is never predicted
    preds[0, 0] = y  # and one perfect row
    acc, f1 = val_scores(torch.from_numpy(preds), torch.from_numpy(y), 4)
    assert acc.shape == f1.shape == (2, 5)
    for i in range(2):
        for j in range(5):
            assert acc[i, j].item() == pytest.approx((preds[i, j] == y).mean(), abs=1e-12)
            assert f1[i, j].item() == pytest.approx(macro_f1(y, preds[i, j]), abs=1e-12)
    assert f1[0, 0].item() == 1.0
    # a class in neither truth nor predictions (a genre missing from a small val split) is left out
    y3, p3 = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert macro_f1(y3, p3) == pytest.approx((2 / 3 + 0.8) / 2)
    assert val_scores(torch.from_numpy(p3), torch.from_numpy(y3), 4)[1].item() == pytest.approx((2 / 3 + 0.8) / 2)
    # one present in the truth but never predicted still scores 0
    assert macro_f1(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx((1 + 2 / 3 + 0) / 3)


@pytest.mark.slow
def test_study_mlp_learns_the_real_data(mfcc):
    """The study's settings (SGD lr 0.002, batch 16, 30 epochs) reach its ballpark (62% reported)."""
    result = train(TrainConfig(seed=0, device="cpu"), mfcc["train"], mfcc["val"])
    assert result.metrics["accuracy"] > 0.55
    assert all(math.isfinite(r.loss) for r in result.history)
    assert result.history[-1].loss < result.history[0].loss


def test_log_std_model_standardises_log_deviations_and_saves_its_transform(mfcc, tmp_path):
    """mfcc-mlp-log takes the log of the 13 standard deviations before standardising: the fitted
    statistics are those of the transformed training features, and a saved run applies the same."""
    from dataclasses import replace

    from musicgenre.config import RECIPES

    tr = subset(mfcc["train"], 800)
    result = train(replace(RECIPES["mfcc-mlp-log"], epochs=2, seed=0, device="cpu"), tr, mfcc["val"])
    model = result.model
    X = torch.from_numpy(tr.X)
    prepared = model.prepare(X)
    assert torch.allclose(prepared[:, :13], X[:, :13])
    assert torch.allclose(prepared[:, 13:], torch.log(X[:, 13:] + 1e-3))
    z = (prepared - model.mean) / model.std
    assert z.mean(0).abs().max() < 1e-3 and (z.std(0) - 1).abs().max() < 1e-2
    saved = load_run(save_run(result, tmp_path / "run"))
    assert evaluate_model(saved.model, mfcc["val"]) == result.metrics


def test_cuda_graphs_only_where_a_step_can_be_replayed():
    """Graphs need a GPU, optimizer state the update reads on the GPU and an lr the graph reads: constant,
    or a cosine schedule written into a tensor lr (Adam, AdamW). Augmentation is drawn outside the graph."""
    from musicgenre.config import RECIPES
    from musicgenre.cudagraph import can_graph

    gpu, base = torch.device("cuda"), TrainConfig()
    for on in (base, TrainConfig(optimizer="adam"), TrainConfig(mixup=0.2), *RECIPES.values()):
        assert can_graph(on, gpu), on
    assert not can_graph(base, torch.device("cpu"))
    for off in (TrainConfig(cuda_graphs=False), TrainConfig(scheduler="cosine"), TrainConfig(optimizer="adam", scheduler="onecycle"),
                TrainConfig(optimizer="adagrad", scheduler="cosine")):
        assert not can_graph(off, gpu), off


def test_saved_weights_are_the_same_bytes_in_every_process(tmp_path):
    """A run saved twice, from two processes, gives identical files (the weights carry no unordered metadata)."""
    import subprocess
    import sys

    code = ("import sys, torch; from musicgenre.models import build_model; from musicgenre.runs import save_weights; "
            "torch.manual_seed(0); save_weights(build_model('mfcc-mlp', 4), __import__('pathlib').Path(sys.argv[1]), 'mfcc-mlp', list('abcd'))")
    files = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for f in files:
        subprocess.run([sys.executable, "-c", code, str(f)], check=True)
    assert len({f.read_bytes() for f in files}) == 1
    from safetensors.torch import load_file  # and those bytes are the model's weights

    torch.manual_seed(0)
    expected, saved = build_model("mfcc-mlp", 4).state_dict(), load_file(files[0])
    assert saved.keys() == expected.keys() and all(torch.equal(saved[k], v) for k, v in expected.items())


def test_a_last_batch_of_one_joins_the_batch_before():
    assert batch_sizes(3201, 64)[-2:] == [64, 65] and sum(batch_sizes(3201, 64)) == 3201
    assert batch_sizes(17, 16) == [17] and batch_sizes(32, 16) == [16, 16] and batch_sizes(1, 16) == [1]


def test_batch_norm_recipe_trains_when_one_clip_is_left_over(mfcc):
    # 801 clips in batches of 64 leave one: batch norm cannot train on it alone, so it joins the batch before.
    cfg = replace(recipe("mfcc-mlp-log"), epochs=2, seed=0, device="cpu")
    result = train(cfg, subset(mfcc["train"], 801), mfcc["val"])
    assert len(result.history) == 2 and result.metrics["accuracy"] > 0.5
    with pytest.raises(MusicGenreError, match="holds clips of one genre only"):  # one clip: before batch norm's check
        train(cfg, subset(mfcc["train"], 1), mfcc["val"])
    with pytest.raises(MusicGenreError, match="batch norm.*batch size 1\\)"):
        train(replace(recipe("mfcc-mlp-plus"), batch_size=1, epochs=1, seed=0), mfcc["train"], mfcc["val"])


def test_a_run_that_diverges_at_once_keeps_its_initial_weights_and_the_cli_saves_nothing(mfcc, small_mfcc_root,
                                                                                         tmp_path, capsys):
    cfg = TrainConfig(lr=1e10, epochs=3, seed=0, device="cpu")
    result = train(cfg, subset(mfcc["train"], 800), mfcc["val"])
    assert result.best_epoch == 0 and len(result.history) == 1 and math.isnan(result.history[0].loss)
    assert result.history[0].diverged
    seed_everything(0)
    initial = build_model("mfcc-mlp", 4)
    for p, q in zip(result.model.parameters(), initial.parameters()):
        assert torch.equal(p, q)  # epoch 0, what a sweep records for an optimizer that blows up at once
    assert result.metrics["accuracy"] == evaluate_model(initial, mfcc["val"])["accuracy"]
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--lr", "1e10", "--epochs", "2", "--seed", "0", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "diverged: training stops here" in captured.out
    assert captured.err == ("error: training diverged in epoch 1 (NaN or infinite loss, weights or validation outputs) with seed 0: "
                            "nothing was learned; try a lower learning rate\n")
    assert not out.exists()
    # nor is such a run timed as a device's result
    assert main(["bench-devices", "--data", str(small_mfcc_root), "--devices", "cpu", "--lr", "1e10", "--epochs", "2",
                 "--seed", "0"]) == 2
    assert "training diverged in epoch 1" in capsys.readouterr().err


def test_batch_norm_statistics_made_infinite_count_as_diverged(mfcc, tmp_path, capsys):
    """Adam at lr 1e10 turns batch norm's running variance infinite while loss and parameters stay finite:
    the run was kept and saved, and then refused to load."""
    cfg = replace(recipe("mfcc-mlp-plus"), optimizer="Adam", lr=1e10, batch_size=64, epochs=3, seed=0)
    result = train(cfg, mfcc["train"], mfcc["val"])
    assert result.best_epoch == 0 and len(result.history) == 1
    assert all(torch.isfinite(t).all() for t in result.model.state_dict().values())
    assert main(["train", "--data", str(STUDY_DATA), "--model", "mfcc-mlp-plus", "--optimizer", "adam", "--lr", "1e10",
                 "--batch-size", "64", "--epochs", "3", "--seed", "0", "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr().out  # the epoch line says so, though its loss is a (huge) number
    assert "epoch   1/3" in out and out.rstrip().endswith("diverged: training stops here")


@pytest.mark.parametrize("seeds", [[0], [0, 1]])  # one run, and two seeds stacked
def test_validation_clips_no_weights_can_score_are_the_datas_error(mfcc, seeds):
    """Clips finite in float32 but far beyond the training range overflow the net at every epoch, the initial
    weights' included: argmax had made them class 0. Every epoch stops as diverged, and the initial weights
    cannot be scored either: an error about the data, not advice to lower the learning rate."""
    X = mfcc["val"].X.copy()
    X[:50] = np.where(np.arange(26) % 2, 3e38, -3e38)
    cfg = TrainConfig(epochs=2, device="cpu", fused=False)
    with pytest.raises(MusicGenreError, match="^the model's outputs on 50 of the 800 val clips are NaN or infinite"):
        train_seeds(cfg, seeds, subset(mfcc["train"], 400), replace(mfcc["val"], X=X))


@pytest.mark.parametrize("fused, seeds", [(True, [0]), (False, [0]), (False, [0, 1])])  # fused, PyTorch, stacked
def test_weights_made_infinite_by_an_epochs_last_step_count_as_diverged(mfcc, fused, seeds):
    """One step an epoch: its loss, taken before the step, is finite; the step makes the weights infinite.
    That epoch was kept, and the saved run then refused to load."""
    cfg = TrainConfig(lr=3e38, epochs=2, device="cpu", fused=fused)
    for result in train_seeds(cfg, seeds, subset(mfcc["train"], 16), mfcc["val"]):
        assert math.isfinite(result.history[0].loss) and result.history[0].val_f1 is None
        assert result.best_epoch == 0 and len(result.history) == 1
        assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.parametrize("seeds", [[0], [0, 1]])  # one run, and two seeds stacked
def test_a_run_that_diverges_later_stops_and_keeps_its_best_sound_epoch(mfcc, monkeypatch, tmp_path, seeds):
    # From epoch 3 on every forward pass gives NaN, as a diverging run's does: training must stop there.
    poisoned = []
    for cls, name in [(GenreNet, "forward"), (StackedChain, "__call__")]:
        real = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda self, x, real=real: real(self, x) * (np.nan if poisoned else 1))

    def on_epoch(record):
        if record.epoch == 2:
            poisoned.append(True)

    cfg = TrainConfig(epochs=6, seed=0, device="cpu", fused=False)  # PyTorch's loops: the fused epoch calls no forward
    results = train_seeds(cfg, seeds, subset(mfcc["train"], 320), mfcc["val"], on_epoch)
    assert len(results) == len(seeds)
    for result in results:
        assert [math.isnan(r.loss) for r in result.history] == [False, False, True]
        assert result.history[-1].val_f1 is None and result.best_epoch in (1, 2)
        assert all(torch.isfinite(p).all() for p in result.model.parameters())
    # Saved as strict JSON (the NaN loss as null), and read back as a run.
    poisoned.clear()
    run_dir = save_run(results[0], tmp_path / "run")
    history = json.loads((run_dir / "history.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    assert history[-1]["loss"] is None and [h["epoch"] for h in history] == [1, 2, 3]
    assert load_run(run_dir).metrics["best_epoch"] == results[0].best_epoch


@pytest.mark.parametrize("options, message", [
    ({"lr": float("nan")}, "^learning rate must be a positive number, not nan$"),
    ({"lr": float("inf")}, "^learning rate must be a positive number, not inf$"),
    ({"epochs": 0}, "^epochs must be at least 1, not 0$"),
    ({"batch_size": -16}, "^batch_size must be at least 1, not -16$"),
    ({"epochs": 2.5}, "^epochs must be a whole number, not 2.5$"),  # crashed inside train()
    ({"epochs": True}, "^epochs must be a whole number, not True$"),  # trained one epoch
    ({"seed": 1.5}, "^seed must be a whole number or None, not 1.5$"),
    ({"patience": 1.5}, "^patience must be a whole number or None, not 1.5$"),
    ({"patience": 0}, "^patience must be at least 1 epoch, not 0$"),
    ({"lr": "0.01"}, "^lr must be a number, not '0.01'$"),
    ({"model": None}, "^model must be a string, not None$"),
    ({"lr": 1e39}, "^learning rate 1e\\+39 is beyond float32's largest number \\(3.403e\\+38\\)$"),  # was a traceback
    ({"weight_decay": float("nan")}, "^weight decay must be 0 \\(off\\) or a positive number, not nan$"),
    ({"weight_decay": -1.0}, "^weight decay must be 0 \\(off\\) or a positive number, not -1.0$"),
    ({"mixup": float("nan")}, "^mixup alpha must be 0 \\(off\\) or a positive number, not nan$"),
    ({"mixup": 1e-3}, "^mixup alpha 0.001 out of range: give 0 \\(off\\) or a number from 0.01 to 1000$"),
    ({"mixup": 1e39}, "^mixup alpha 1e\\+39 out of range"),
    ({"seed": 99999999999999999999}, "seed 99999999999999999999 out of range"),
    ({"seed": -1}, "seed -1 out of range"),
    ({"seed": 2**32}, "seed 4294967296 out of range: give a whole number from 0 to 2\\*\\*32 - 1"),  # torch would train seed 0
    ({"standardize": "no"}, "standardize must be True or False, not 'no'"),  # a truthy string
    ({"mixup_same_class": 1}, "mixup_same_class must be True or False, not 1"),
    ({"optimizer": "rprop", "weight_decay": 1e-3}, "^optimizer Rprop has no weight decay: set it to 0"),
])
def test_non_finite_or_out_of_range_options_are_refused(options, message):
    with pytest.raises(MusicGenreError, match=message):
        TrainConfig(**options)


def test_the_optimizers_without_weight_decay_are_those_torch_gives_none():
    import inspect

    lacking = [o for o in OPTIMIZERS if "weight_decay" not in inspect.signature(getattr(torch.optim, o)).parameters]
    assert tuple(lacking) == WITHOUT_WEIGHT_DECAY


def test_a_model_whose_features_the_configuration_contradicts_is_refused_before_training():
    """TrainConfig(model="mel-cnn") keeps the default features="mfcc": trained, its run could not be loaded back."""
    from conftest import GENRES, synthetic_melgrams

    X, labels = synthetic_melgrams(8)
    mel = Dataset(X, np.array([GENRES.index(v) for v in labels]), tuple(GENRES), "melgram", "train")
    with pytest.raises(MusicGenreError, match="model mel-cnn reads melgram features, but the configuration says "
                                              "features='mfcc': set features='melgram'"):
        train(TrainConfig(model="mel-cnn", seed=0, epochs=1), mel)
    assert train(TrainConfig(model="mel-cnn", features="melgram", seed=0, epochs=1), mel).best_epoch == 1


@pytest.mark.parametrize("optimizer", ["SGD", "Adagrad", "Rprop"])
def test_onecycle_shapes_the_lr_only_and_works_with_every_optimizer(mfcc, optimizer):
    # OneCycleLR's default would switch SGD's momentum on (0.95) and refuse optimizers without momentum.
    cfg = TrainConfig(optimizer=optimizer, scheduler="onecycle", epochs=2, seed=0, device="cpu")
    model = build_model("mfcc-mlp", 4)
    opt = make_optimizer(cfg, model.parameters())
    defaults = dict(opt.param_groups[0])
    make_scheduler(cfg, opt, 10)
    assert {k: v for k, v in opt.param_groups[0].items() if k in defaults and k not in ("lr", "params")} == \
        {k: v for k, v in defaults.items() if k not in ("lr", "params")}
    assert len(train(cfg, subset(mfcc["train"], 320), mfcc["val"]).history) == 2


@pytest.mark.parametrize("value", ["0", "abc", "\u00b2", "100000", "99999999999999999999"])
def test_thread_setting_out_of_range_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv("MUSICGENRE_THREADS", value)
    with pytest.raises(MusicGenreError, match="give a number of threads from 1 to 1024"):
        train_threads("mfcc-mlp")


def test_auto_device_keeps_the_fused_mlp_on_the_cpu_where_a_gpu_is_present(monkeypatch):
    """The fused CPU epoch beats a GPU for the study's MLP, so 'auto' keeps it on the CPU; other models and an
    explicit 'cuda' go to the GPU (checked with CUDA faked present: nothing is moved)."""
    from musicgenre.training import training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert training_device(TrainConfig(), 4) == torch.device("cpu")
    assert training_device(TrainConfig(device="cuda"), 4) == torch.device("cuda")
    assert training_device(TrainConfig(optimizer="Adam"), 4) == torch.device("cuda")
    assert training_device(recipe("mfcc-mlp-log"), 4) == torch.device("cuda")
    assert training_device(TrainConfig(fused=False), 4) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device(TrainConfig(optimizer="Adam"), 4) == torch.device("cpu")


def test_a_gpu_index_beyond_the_machines_gpus_is_a_one_line_error(monkeypatch):
    """cuda:3 on a one-GPU machine would otherwise fail deep inside torch (checked with CUDA faked present)."""
    from musicgenre.benchmark import device_available
    from musicgenre.training import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0") and resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(MusicGenreError, match="^device 'cuda:3' asked for, but this machine has 1 CUDA GPU"):
        resolve_device("cuda:3")
    assert device_available("cuda:0") and not device_available("cuda:3")
