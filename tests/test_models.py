"""Model registry: forward shapes and sizes, and proof that the new melgram nets learn real music."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_split
from musicgenre.cli import main
from musicgenre.config import RECIPES, TrainConfig
from musicgenre.datasets import Dataset, load_dataset
from musicgenre.models import MODELS, MelCNN, build_model, count_parameters, model_features
from musicgenre.training import evaluate_model, train

AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
GENRE_FILES = {  # 2-3 s of decoding in all; the first 30 s of each
    "classical": "classical_brahms_hungarian_dance_5.ogg",
    "folk": "folk_karissa_hobbs_lets_go_fishin.ogg",
    "hiphop": "hiphop_admiralbob77_choice_drum_bass.ogg",
}


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_shape(name):
    shape = (26,) if model_features(name) == "mfcc" else (21, 128)
    model = build_model(name, 4).eval()
    assert model(torch.randn(5, *shape)).shape == (5, 4)


def test_parameter_counts():
    counts = {name: count_parameters(build_model(name, 4)) for name in MODELS}
    assert counts["mfcc-mlp"] == 26 * 128 + 128 + 128 * 32 + 32 + 32 * 4 + 4  # the study's net, unchanged
    assert counts["mel-cnn"] == 1_589_796
    # 26 -> 256 -> 256 -> 4 with a BatchNorm (weight + bias) after each hidden layer
    assert counts["mfcc-mlp-plus"] == (26 * 256 + 256) + 2 * 256 + (256 * 256 + 256) + 2 * 256 + (256 * 4 + 4)
    assert counts["mfcc-linear"] == 26 * 4 + 4
    assert counts["mel-cnn-bn"] < counts["mel-cnn"] / 10
    assert counts["mel-resnet"] < 200_000


def test_recipes_name_registered_models():
    for name, recipe in RECIPES.items():
        assert model_features(recipe.model) == recipe.features, name


def test_linear_recipe_learns_real_mfcc(study_data):
    """Logistic regression on the log-deviation input: already far beyond the study's 62% (chance 25%)."""
    d = load_dataset(study_data, "mfcc", ("train", "val"))
    result = train(TrainConfig(**{**RECIPES["mfcc-linear"].to_dict(), "epochs": 10, "seed": 0}), d["train"], d["val"])
    assert result.metrics["accuracy"] > 0.7


HELD_OUT = 10  # each recording's last seconds, scored but never trained on


def real_melgrams(seconds: int = 30) -> tuple[Dataset, Dataset]:
    """(21, 128) melgrams of 1 s segments of real recordings, computed with librosa as the study did: each
    recording's first seconds for training, its last HELD_OUT seconds held out."""
    import librosa

    parts = {"train": ([], []), "val": ([], [])}
    for label, name in enumerate(GENRE_FILES.values()):
        audio, _ = librosa.load(AUDIO / name, sr=8000, duration=seconds)
        segments = audio[: len(audio) // 8000 * 8000].reshape(-1, 8000)
        for i, seg in enumerate(segments):
            S = librosa.feature.melspectrogram(y=seg, sr=8000, n_fft=400, hop_length=400)
            X, y = parts["val" if i >= len(segments) - HELD_OUT else "train"]
            X.append(librosa.power_to_db(S, ref=np.max).T)
            y.append(label)
    return tuple(Dataset(np.stack(X).astype(np.float32), np.array(y), tuple(GENRE_FILES), "melgram", split)
                 for split, (X, y) in parts.items())


@pytest.fixture(scope="module")
def real_mel_splits() -> tuple[Dataset, Dataset]:
    return real_melgrams()


@pytest.fixture(scope="module")
def melgrams(real_mel_splits) -> Dataset:
    return real_mel_splits[0]


def test_mel_cnn_pools_before_relu_with_the_study_order_outputs_and_gradients(melgrams):
    """MelCNN pools before its ReLU (faster); on real melgrams it computes what the study's
    conv -> ReLU -> pool order computes, gradients included."""
    ours, study = MelCNN(3), MelCNN(3)
    study.features = nn.Sequential(*[m for conv in ours.features if isinstance(conv, nn.Conv2d)
                                     for m in (conv, nn.ReLU(), nn.MaxPool2d(2))], nn.Flatten())
    study.head = ours.head  # the same parameters, in the study's order
    x = torch.from_numpy(melgrams.X[:32])
    outputs, grads = [], []
    for model in (ours, study):
        out = model(x)
        grads.append(torch.autograd.grad(out.square().sum(), list(ours.parameters())))
        outputs.append(out)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    for g_ours, g_study in zip(*grads):
        torch.testing.assert_close(g_ours, g_study, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mel-cnn-bn", "mel-resnet"])
def test_melgram_models_learn_real_music(real_mel_splits, name):
    """Scored on seconds of each recording they never trained on (chance is 1/3)."""
    train_set, held_out = real_mel_splits
    cfg = RECIPES[name]
    result = train(TrainConfig(**{**cfg.to_dict(), "epochs": 12, "batch_size": 16, "seed": 0}), train_set)
    assert evaluate_model(result.model, held_out)["accuracy"] > 0.65  # 0.77-0.8 here


def test_train_cli_on_a_melgram_root_saves_runs_that_evaluate_as_trained(real_mel_splits, tmp_path, capsys):
    """train on a root of real melgrams: the saved runs (a ResNet, and a recipe with batch norm) record melgram
    features and score on the val split, through evaluate, what training recorded for their kept epoch."""
    import json

    root = tmp_path / "data"
    for d in real_mel_splits:
        write_split(root, d.split, "melgram", d.X, np.array(d.classes)[d.y])
    for name, options in [("resnet", ["--model", "mel-resnet"]), ("cnn-bn", ["--recipe", "mel-cnn-bn"])]:
        out = tmp_path / name
        assert main(["train", *options, "--epochs", "2", "--seed", "0", "--data", str(root), "--out", str(out)]) == 0
        assert json.loads((out / "config.json").read_text())["config"]["features"] == "melgram"
        capsys.readouterr()
        assert main(["evaluate", str(out), "--data", str(root), "--json"]) == 0
        scored, trained = json.loads(capsys.readouterr().out), json.loads((out / "metrics.json").read_text())["val"]
        assert scored["n"] == len(real_mel_splits[1]) and scored["confusion_matrix"] == trained["confusion_matrix"]


def test_bf16_mixed_precision_learns_real_music_and_keeps_fp32_weights(real_mel_splits):
    train_set, held_out = real_mel_splits
    cfg = RECIPES["mel-cnn-bn"]
    cfg = TrainConfig(**{**cfg.to_dict(), "epochs": 12, "batch_size": 16, "seed": 0, "precision": "bf16"})
    result = train(cfg, train_set)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert evaluate_model(result.model, held_out)["accuracy"] > 0.65  # on seconds it never trained on (0.77 here)
