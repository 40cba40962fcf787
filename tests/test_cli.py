"""The command line end to end on temporary data roots: train -> evaluate, and its error lines."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import synthetic_melgrams, write_split
from musicgenre.cli import build_parser, main, train_config_from_args
from musicgenre.config import TrainConfig, recipe
from musicgenre.datasets import data_digest, load_dataset
from musicgenre.runs import load_run
from musicgenre.errors import MusicGenreError


def test_train_then_evaluate_json(small_mfcc_root, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "5", "--seed", "1",
               "--standardize", "--optimizer", "adam", "--lr", "0.005"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "epoch   5/5" in out
    for name in ["model.safetensors", "config.json", "history.json", "history.csv", "metrics.json"]:
        assert (run / name).is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["seed"] == 1 and config["classes"][0] == "blues"
    assert config["data"] == {"root": str(small_mfcc_root.resolve()), "splits": ["train", "val"],
                              "digest": data_digest(load_dataset(small_mfcc_root, "mfcc"))}
    assert len(json.loads((run / "history.json").read_text())) == 5

    assert main(["evaluate", str(run), "--data", str(small_mfcc_root), "--split", "val", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 400 and report["classes"] == config["classes"]
    assert np.array(report["confusion_matrix"]).sum() == 400
    assert report["accuracy"] > 0.6  # standardised MFCCs are well above chance (0.25) after 5 epochs
    saved = json.loads((run / "metrics.json").read_text())["val"]
    assert report["accuracy"] == pytest.approx(saved["accuracy"])

    assert main(["evaluate", str(run), "--data", str(small_mfcc_root)]) == 0
    printed = capsys.readouterr().out  # not a terminal: the headline whole on its first line, not cut at 80 columns
    assert re.fullmatch(rf"{re.escape(str(run))} on val of {re.escape(str(small_mfcc_root))}: n=400  accuracy "
                        rf"{report['accuracy']:.4f}  macro F1 {report['f1_macro']:.4f}", printed.splitlines()[0])
    assert "confusion matrix" in printed

    # Clips finite in float32 but far beyond the training range overflow the net: no score, not class 0.
    X = np.load(small_mfcc_root / "val/mfccs/X.npy")
    X[5] = np.where(np.arange(26) % 2, 3e38, -3e38)
    np.save(small_mfcc_root / "val/mfccs/X.npy", X)
    for command in ("evaluate", "ensemble"):
        assert main([command, str(run), "--data", str(small_mfcc_root), "--json"]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == ("error: the model's outputs on 1 of the 400 val clips are NaN "
                                                            "or infinite (first: clip 5), so they cannot be scored")


def test_existing_run_is_not_overwritten(small_mfcc_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    rc = main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1"])
    assert rc == 2 and (run / "keep.txt").read_text() == "precious"
    assert "already exists" in capsys.readouterr().err


def test_missing_test_split_and_missing_data_root(small_mfcc_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(small_mfcc_root), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no test split of mfcc features (no folder test/mfccs)" in err and err.count("\n") == 1
    monkeypatch.delenv("MUSICGENRE_DATA", raising=False)
    assert main(["train", "--out", str(tmp_path / "r2")]) == 2
    assert "music_genre_data_di" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_gpu_this_machine_lacks_is_refused_before_the_data_loads(tmp_path, capsys, command):
    assert main([command, "--device", "cuda:0", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr() == ("", f"error: musicgenre {command}: device 'cuda:0' asked for, but no CUDA GPU is available "
                                       f"here (see musicgenre {command} --help)\n")


def test_refusals_of_settings_found_after_the_data_loads_name_the_command(small_mfcc_root, tmp_path, capsys):
    """Patience needs a val split, known only once the data root is read: still an option's refusal."""
    (small_mfcc_root / "val").rename(tmp_path / "aside")
    assert main(["train", "--data", str(small_mfcc_root), "--patience", "3", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ("error: musicgenre train: patience (--patience) stops when the validation F1 stops "
                                       "improving, and there is no val split to score: leave it out, or add a val split "
                                       "(see musicgenre train --help)\n")
    (tmp_path / "audio").mkdir()
    assert main(["extract", str(tmp_path / "audio"), "--out", str(tmp_path / "ds"), "--split-ratio", "1/x"]) == 2
    assert capsys.readouterr().err.startswith("error: musicgenre extract: split ratio '1/x': ")
    assert not (tmp_path / "run").exists() and not (tmp_path / "ds").exists()


def test_a_thread_count_of_no_number_is_refused_before_the_data_loads(small_mfcc_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUSICGENRE_THREADS", "abc")
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr() == ("", "error: MUSICGENRE_THREADS='abc': give a number of threads from 1 to 1024\n")


def test_wrong_kind_of_model_directory(small_mfcc_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"], config["config"]["features"] = "mel-cnn", "melgram"
    (run / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run), "--data", str(small_mfcc_root)]) == 2
    assert re.search(r"model.safetensors: holds a mfcc-mlp model, but .*config.json names model mel-cnn", capsys.readouterr().err)

    (run / "config.json").write_text(json.dumps({"kind": "something-else"}))
    assert main(["evaluate", str(run), "--data", str(small_mfcc_root)]) == 2
    assert "not a musicgenre run configuration" in capsys.readouterr().err
    assert main(["evaluate", str(small_mfcc_root), "--data", str(small_mfcc_root)]) == 2
    assert "is not a musicgenre run directory" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mel-cnn", "mel-cnn-relu"])
def test_melgram_cnn_trains_from_cli(tmp_path, capsys, model):
    root = tmp_path / "mel"
    X, labels = synthetic_melgrams(64)
    write_split(root, "train", "melgram", X, labels)
    write_split(root, "val", "melgram", *synthetic_melgrams(32, seed=1))
    run = tmp_path / "run"
    rc = main(["train", "--features", "melgram", "--model", model, "--data", str(root), "--out", str(run),
               "--epochs", "2", "--seed", "0", "--optimizer", "adagrad", "--lr", "0.01"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"{model} (1,589,796 parameters)" in out  # 269,440 conv + 1,320,356 dense
    meta = json.loads((run / "config.json").read_text())
    assert meta["n_parameters"] == 1_589_796  # and the software that trained it, beside it:
    assert set(meta["versions"]) == {"python", "musicgenre", "torch", "numpy", "numba"} and meta["versions"]["torch"] == torch.__version__
    assert main(["evaluate", str(run), "--data", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 32


def test_feature_model_mismatch_is_one_line(tmp_path, capsys):
    assert main(["train", "--features", "mfcc", "--model", "mel-cnn", "--out", str(tmp_path / "r")]) == 2
    assert "model mel-cnn reads melgram features, not mfcc" in capsys.readouterr().err


def _config(*options: str):
    return train_config_from_args(build_parser().parse_args(["train", "--out", "x", *options]))


def test_given_options_override_a_recipe_even_at_study_defaults():
    cfg = _config("--recipe", "mfcc-mlp-plus", "--epochs", "30", "--mixup", "0", "--optimizer", "SGD", "--seed", "3")
    assert (cfg.model, cfg.epochs, cfg.mixup, cfg.optimizer, cfg.seed) == ("mfcc-mlp-plus", 30, 0.0, "SGD", 3)
    assert (cfg.lr, cfg.standardize, cfg.scheduler) == (3e-3, True, "cosine")  # not given: the recipe's
    assert _config("--recipe", "mfcc-mlp-plus", "--no-standardize").standardize is False
    assert _config("--recipe", "mel-cnn-bn", "--precision", "bf16").precision == "bf16"
    assert _config().model == "mfcc-mlp" and _config().optimizer == "SGD" and _config().lr == 0.002
    assert (_config("--features", "melgram").model, _config("--model", "mel-resnet").features) == ("mel-cnn", "melgram")
    # a model given without --recipe trains with its own recipe: the study's CNN with Adagrad, which learns
    # (SGD at lr 0.002 left it at the majority class), and its options still override
    assert _config("--features", "melgram") == _config("--model", "mel-cnn") == recipe("mel-cnn")
    assert _config("--model", "mel-resnet", "--epochs", "3") == replace(recipe("mel-resnet"), epochs=3)
    assert _config("--model", "mfcc-mlp-log") == recipe("mfcc-mlp-log") and _config("--features", "mfcc") == TrainConfig()
    # same-class mixup only chooses mixup's partners: asked for with mixup off, it is refused, not ignored
    # the recipe's, turned off with mixup and recorded off, so that the recorded options can be given again
    no_mixup = _config("--recipe", "mfcc-mlp-log", "--mixup", "0")
    assert no_mixup.mixup_same_class is False
    assert _config("--recipe", "mfcc-mlp-log", "--mixup", "0", "--no-mixup-same-class") == no_mixup
    with pytest.raises(MusicGenreError, match=r"--mixup-same-class chooses mixup's partners: it needs mixup on"):
        _config("--mixup-same-class")
    with pytest.raises(MusicGenreError, match="unknown recipe 'nope'"):
        _config("--recipe", "nope")
    with pytest.raises(MusicGenreError, match="model mfcc-mlp reads mfcc features, not melgram"):
        _config("--model", "mfcc-mlp", "--features", "melgram")
    # a recipe's settings were chosen for its model: --features alone must not move them onto another one
    with pytest.raises(MusicGenreError, match="recipe mel-cnn-bn reads melgram features, not mfcc"):
        _config("--recipe", "mel-cnn-bn", "--features", "mfcc")
    assert _config("--recipe", "mel-cnn-bn", "--features", "melgram").model == "mel-cnn-bn"
    with pytest.raises(MusicGenreError, match="recipe mel-cnn-bn reads melgram features, not mfcc"):
        _config("--recipe", "mel-cnn-bn", "--model", "mfcc-mlp")  # nor --model
    assert _config("--recipe", "mfcc-mlp-log", "--model", "mfcc-mlp").lr == 3e-3  # same features: settings kept


def test_spec_augment_on_mfcc_is_refused_before_training(small_mfcc_root, tmp_path, capsys):
    assert main(["train", "--data", str(small_mfcc_root), "--spec-augment", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == ("error: musicgenre train: spec_augment (--spec-augment) masks melgram bands and frames: "
                                       "it does nothing to mfcc features (see musicgenre train --help)\n")
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    (["--weight-decay", "-1"], "weight decay must be 0"),
    (["--label-smoothing", "2"], r"label smoothing must be in \[0, 1\)"),
    (["--device", "cuda:x"], "unknown device 'cuda:x'"),
    (["--optimizer", "adamm"], "unknown optimizer 'adamm'"),
    (["--model", "nope"], "unknown model 'nope': choose one of mfcc-mlp, mel-cnn"),
    (["--model", "mfcc-mlp-std"], r"unknown model 'mfcc-mlp-std': it is a recipe \(--recipe mfcc-mlp-std\) of model mfcc-mlp"),
    (["--model", "mel-cnn", "--features", "mfcc"], "model mel-cnn reads melgram features, not mfcc"),
])
def test_bad_training_options_are_one_line_errors(options, message, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *options]) == 2
    assert re.fullmatch(f"error: musicgenre train: {message}.* \\(see musicgenre train --help\\)\n", capsys.readouterr().err)


def test_unknown_precision_in_a_saved_config_is_refused():
    with pytest.raises(MusicGenreError, match="unknown precision 'fp16'"):
        TrainConfig.from_dict({"precision": "fp16"})


def test_non_positive_counts_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "x", "--epochs", "0"])
    assert "must be at least 1, not 0" in capsys.readouterr().err


def test_output_in_a_latin1_locale_escapes_what_it_cannot_encode(tmp_path):
    """File names that are not UTF-8 print as their bytes; other characters the stream's encoding lacks (here
    Latin-1) as escapes, not an encoding traceback; the caller's streams are left as they were."""
    import os
    import subprocess
    import sys

    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "evaluate", str(tmp_path / "日本")], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "latin-1"})
    assert proc.returncode == 2
    assert proc.stderr == f"error: {tmp_path}/\\u65e5\\u672c: no such run directory\n".encode("latin-1")
    before = (sys.stdout.errors, sys.stderr.errors)
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert (sys.stdout.errors, sys.stderr.errors) == before


def test_python_dash_m_runs_the_command_line_and_says_its_version():
    import subprocess
    import sys

    from musicgenre import __version__

    out = subprocess.run([sys.executable, "-m", "musicgenre", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == f"musicgenre {__version__}\n"


def test_a_command_whose_product_is_files_finishes_them_when_its_output_reader_goes(small_mfcc_root, tmp_path):
    """`train ... | head -1` stopped at the next line it printed and exited 0 without its run saved; a sweep exited
    1 without a word (rich's progress bar), its tables unwritten. Their output now goes nowhere once its reader is
    gone, and the work carries on."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # a reader gone before the first line: every write meets a broken pipe
    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    commands = {"run": ["train", "--epochs", "2", "--seed", "0"],
                "sweep": ["sweep", "--optimizers", "sgd", "--seeds", "1", "--epochs", "1"]}
    for out, args in commands.items():
        proc = subprocess.run([sys.executable, "-c", code, *args, "--data", str(small_mfcc_root), "--out", str(tmp_path / out)],
                              stdout=write, stderr=subprocess.PIPE, text=True)
        assert proc.returncode == 0 and "rror" not in proc.stderr  # no error line, no traceback
        # the same with stderr to that reader too (2>&1 | head -1), where the sweep still exited 1 half done
        proc = subprocess.run([sys.executable, "-c", code, *args, "--data", str(small_mfcc_root), "--out", str(tmp_path / f"{out}2")],
                              stdout=write, stderr=write)
        assert proc.returncode == 0
    os.close(write)
    # and with stdout closed before the start (>&-), where train crashed on writing to None
    proc = subprocess.run([sys.executable, "-c", code, *commands["run"], "--data", str(small_mfcc_root), "--out",
                           str(tmp_path / "run3")], stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    assert (proc.returncode, proc.stderr) == (0, "")
    for run in ("run", "run2", "run3"):
        assert load_run(tmp_path / run).metrics["epochs_run"] == 2
    assert (tmp_path / "sweep" / "sweep.md").is_file() and (tmp_path / "sweep2" / "sweep.md").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x", "--epochs", "0"], "musicgenre train: argument --epochs: must be at least 1, not 0 (see musicgenre train --help)"),
    (["train"], "musicgenre train: the following arguments are required: --out (see musicgenre train --help)"),
    ([], "musicgenre: the following arguments are required: command (see musicgenre --help)"),
])
def test_the_parsers_refusals_are_one_line(argv, message, capsys):
    """argparse printed its whole usage first (16 lines for train) before its error."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"


def test_an_unknown_option_is_named_with_its_command(audio_dir, capsys):
    """It was reported by the whole program's usage, as `musicgenre: error: unrecognized arguments`."""
    assert main(["predict", str(audio_dir), "--bogus"]) == 2
    assert capsys.readouterr() == ("", "error: musicgenre predict: unrecognized arguments: --bogus "
                                       "(see musicgenre predict --help)\n")


def test_a_full_output_device_is_named(audio_dir):
    """`predict ... > /dev/full` said "[Errno 28] No space left on device", as if the disk of some file were full."""
    import os
    import subprocess
    import sys

    code = "import sys; from musicgenre.cli import main; sys.exit(main(sys.argv[1:]))"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", code, "predict", str(audio_dir), "--workers", "1"], stdout=full,
                              stderr=subprocess.PIPE, text=True)
    assert (proc.returncode, proc.stderr) == (1, "error: [Errno 28] No space left on device: 'standard output'\n")
    # stderr closed from the start (2>&-): every file was "could not be processed" (its None had no flush), and
    # notes went to stdout; stderr full (2>/dev/full) never costs the result
    for stderr in ({"preexec_fn": lambda: os.close(2)}, {"stderr": open("/dev/full", "w")}):
        proc = subprocess.run([sys.executable, "-c", code, "predict", str(audio_dir), "--workers", "1", "--json"],
                              stdout=subprocess.PIPE, text=True, **stderr)
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert proc.returncode == 0 and len(records) > 5 and all("genre" in r for r in records)
