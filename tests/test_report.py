"""Reports for run and sweep directories (figures, Markdown, self-contained HTML), and `reproduce` end to end."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import matplotlib.image
import numpy as np
import pytest
import torch

from conftest import STUDY_DATA, synthetic_melgrams, write_split
from musicgenre.cli import main
from musicgenre.errors import MusicGenreError
from musicgenre.report import build_report
from musicgenre.runs import load_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_report(out, images: set[str]) -> str:
    """Check the PNGs are valid, the Markdown links them and the HTML embeds every one; return the Markdown."""
    md = (out / "report.md").read_text()
    assert set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)) == images
    for name in images:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        h, w, _ = matplotlib.image.imread(out / name).shape
        assert h > 100 and w > 100
    html = (out / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", html)
    assert len(sources) == len(images) and all(s.startswith("data:image/png;base64,") for s in sources)
    return md


@pytest.fixture
def mel_root(tmp_path):
    root = tmp_path / "mel"
    for split, n, seed in [("train", 48, 0), ("val", 24, 1)]:
        X, labels = synthetic_melgrams(n, seed)
        write_split(root, split, "melgram", X, labels)
    return root


def test_run_report(small_mfcc_root, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "3", "--seed", "0"]) == 0
    md = assert_report(build_report(run, tmp_path / "rep"), {"learning_curves.png", "confusion.png", "per_class.png"})
    metrics = json.loads((run / "metrics.json").read_text())["val"]
    assert "| optimizer | SGD |" in md and "| seed | 0 |" in md
    assert f"accuracy {100 * metrics['accuracy']:.1f}%" in md
    assert f"| blues | {metrics['per_class']['blues']['precision']:.3f} |" in md


def test_report_never_writes_into_a_folder_it_would_clobber(small_mfcc_root, tmp_path, capsys):
    run, mine = tmp_path / "run", tmp_path / "mine"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1", "--seed", "0"]) == 0
    mine.mkdir()
    (mine / "report.md").write_text("precious")
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(mine)]) == 2
    assert capsys.readouterr().err == f"error: {mine}: already exists and is not empty (choose another --out, or --overwrite: overwrite=True in Python)\n"
    assert main(["report", str(run), "--out", str(run / "rep"), "--overwrite"]) == 2  # inside the run it reads
    assert "overlaps the input" in capsys.readouterr().err
    assert (mine / "report.md").read_text() == "precious" and not (run / "rep").exists()
    assert main(["report", str(run), "--out", str(mine), "--overwrite"]) == 0
    assert (mine / "report.md").read_text().startswith("# Training run: run")


def test_seeds_report(small_mfcc_root, tmp_path):
    """A `train --seeds N` folder was refused ("report on one of them"): its seeds, their mean ± std, then the best."""
    seeds = tmp_path / "seeds"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(seeds), "--seeds", "2", "--seed", "3", "--epochs", "3"]) == 0
    md = assert_report(build_report(seeds, tmp_path / "rep"), {"best_learning_curves.png", "best_confusion.png", "best_per_class.png"})
    summary = json.loads((seeds / "summary.json").read_text())
    acc, f1 = (summary[f"val_{k}"] for k in ("accuracy", "f1_macro"))
    assert md.startswith("# Seeds: seeds\n")
    assert (f"2 seeds of one configuration: val accuracy {acc['mean']:.4f} ± {acc['std']:.4f}, "
            f"macro F1 {f1['mean']:.4f} ± {f1['std']:.4f}") in md
    for seed in (3, 4):
        record = json.loads((seeds / f"seed-{seed}" / "metrics.json").read_text())
        assert (f"| {seed} | {record['val']['accuracy']:.4f} | {record['val']['f1_macro']:.4f} | "
                f"{record['best_epoch']} |") in md
    best = 3 + int(np.argmax(f1["values"]))
    assert f"## Best: seed {best}" in md and f"| seed | {best} |" in md
    # a run from elsewhere copied in as one of its seeds is refused, not reported as that seed
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(tmp_path / "other"), "--seed", "4", "--epochs", "2"]) == 0
    shutil.rmtree(seeds / "seed-4")
    shutil.copytree(tmp_path / "other", seeds / "seed-4")
    with pytest.raises(MusicGenreError, match="seed-4: not seed 4 of the configuration .*summary.json records"):
        build_report(seeds, tmp_path / "rep2")
    summary_text = (seeds / "summary.json").read_text()
    for listed, message in (([], "'seeds' must list the folder's seeds"), ([3], "its run folders .seed-3, seed-4. are not the seeds")):
        (seeds / "summary.json").write_text(json.dumps({**json.loads(summary_text), "seeds": listed}))
        with pytest.raises(MusicGenreError, match=message):  # [] crashed; [3] reported one seed of two
            build_report(seeds, tmp_path / "rep3")


def test_sweep_report(small_mfcc_root, tmp_path):
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--data", str(small_mfcc_root), "--out", str(sweep), "--optimizers", "sgd,adam",
                 "--seeds", "1", "--epochs", "2"]) == 0
    md = assert_report(build_report(sweep, tmp_path / "rep"),
                       {"sweep.png", "best_learning_curves.png", "best_confusion.png", "best_per_class.png"})
    assert "| SGD | 0.002 |" in md and "| Adam | 0.002 |" in md
    assert "|---|---:|---:|---:|---:|---:|" in md  # its numbers right-aligned, as in sweep.md
    assert "<td align=right>0.002</td>" in (tmp_path / "rep" / "report.html").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| SGD |") or line.startswith("| Adam |")]
    best = rows[0].split("|")[1].strip()
    assert f"## Best: {best}, seed 0" in md and "Unfinished" not in md
    # a sweep stopped part way says so, and that its best is the best so far
    (sweep / "runs" / "Adam" / "results.json").rename(tmp_path / "adam-results.json")
    md = (build_report(sweep, tmp_path / "part") / "report.md").read_text()
    assert "Unfinished: 1 of 2 optimizers have run; not yet Adam (rerun the sweep command to continue it)." in md
    assert "## Best so far: SGD, seed 0" in md
    (tmp_path / "adam-results.json").rename(sweep / "runs" / "Adam" / "results.json")
    # a sweep written before the runs were named seed-K (as `train --seeds` names them) still reports
    for opt in ("SGD", "Adam"):
        (sweep / "runs" / opt / "seed-0").rename(sweep / "runs" / opt / "seed0")
    assert f"## Best: {best}, seed 0" in (build_report(sweep, tmp_path / "legacy") / "report.md").read_text()


def test_melgram_report_shows_examples_with_data(mel_root, tmp_path, monkeypatch):
    run = tmp_path / "cnn"
    assert main(["train", "--data", str(mel_root), "--out", str(run), "--features", "melgram", "--epochs", "1",
                 "--seed", "0", "--batch-size", "16"]) == 0
    plain = {"learning_curves.png", "confusion.png", "per_class.png"}
    monkeypatch.delenv("MUSICGENRE_DATA", raising=False)
    md = assert_report(build_report(run, tmp_path / "recorded"), plain | {"mel_examples.png"})  # the run's own root
    assert f"One training mel-spectrogram per genre, from {mel_root.resolve()}:" in md
    moved = mel_root.rename(tmp_path / "moved")  # the recorded root gone
    md = assert_report(build_report(run, tmp_path / "without"), plain)
    assert "No example mel-spectrograms: no data root to take them from (pass --data ROOT" in md
    assert_report(build_report(run, tmp_path / "with", str(moved)), plain | {"mel_examples.png"})
    monkeypatch.setenv("MUSICGENRE_DATA", str(moved))  # the data root from the environment, as elsewhere, named
    md = assert_report(build_report(run, tmp_path / "from-env"), plain | {"mel_examples.png"})
    assert f"One training mel-spectrogram per genre, from {moved.resolve()}:" in md
    moved.rename(mel_root)
    monkeypatch.setenv("MUSICGENRE_DATA", str(STUDY_DATA))  # another root in the environment: the run's own first
    assert_report(build_report(run, tmp_path / "recorded-first"), plain | {"mel_examples.png"})
    with pytest.raises(MusicGenreError, match="overlaps the input"):  # the data it reads is not replaced
        build_report(run, mel_root, overwrite=True)
    assert (mel_root / "train" / "melgrams" / "X.npy").is_file()
    # The study's own root has melgram labels but no melgram arrays: the report is written without examples.
    md = assert_report(build_report(run, tmp_path / "study-root", str(STUDY_DATA)), plain)
    assert f"No example mel-spectrograms: {STUDY_DATA} has no train split of melgrams" in md
    # A root of melgrams for other genres (say $MUSICGENRE_DATA set for another project): no examples, no failure.
    other = tmp_path / "other"
    X, labels = synthetic_melgrams(8)
    write_split(other, "train", "melgram", X, np.array(["jazz", "folk"] * 4))
    md = assert_report(build_report(run, tmp_path / "other-root", str(other)), plain)
    assert "No example mel-spectrograms: " in md and "unknown genre label(s) 'folk', 'jazz'" in md


def test_report_of_other_folder_is_an_error(tmp_path):
    with pytest.raises(MusicGenreError, match="neither a run directory"):
        build_report(tmp_path, tmp_path / "rep")


def test_reproduce_mfcc_only_end_to_end_and_resume(small_mfcc_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    args = ["reproduce", "--data", str(small_mfcc_root), "--out", str(out), "--seeds", "1", "--epochs", "1",
            "--optimizers", "sgd,adam"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "62.1% / 0.611" in text and "75.8% / 0.756" in text
    assert "No mel-spectrograms" in text and "| cpu |" in text
    mfcc = json.loads((out / "mfcc-net" / "metrics.json").read_text())["val"]
    assert f"| MFCC net, SGD lr 0.002 | 62.1% / 0.611 | {100 * mfcc['accuracy']:.1f}% / {mfcc['f1_macro']:.3f} |" in text
    for name in ["mfcc-net", "sweep"]:
        assert (out / "reports" / name / "report.html").is_file()
    assert not (out / "mel-cnn").exists()
    with pytest.raises(MusicGenreError, match=f"^{out}: a reproduction, whose reports are in {out}/reports, summed up in "
                                              f"{out}/reproduce.md: report on one of its parts .mfcc-net, sweep. for another$"):
        build_report(out, tmp_path / "rep")  # it was called a folder holding one run
    recorded = json.loads((out / "mfcc-net" / "config.json").read_text())["data"]  # as train's runs record it
    assert recorded["root"] == str(small_mfcc_root.resolve()) and len(recorded["digest"]) == 16

    mtime = (out / "mfcc-net" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0  # a rerun reads the finished parts back
    assert (out / "mfcc-net" / "metrics.json").stat().st_mtime_ns == mtime
    # ... but only with the same settings: a 1-epoch run must not pass for part of a 2-epoch reproduction
    capsys.readouterr()
    assert main([*args[:-3], "2", *args[-2:]]) == 2  # --epochs 2
    err = capsys.readouterr().err
    assert f"{out / 'reproduce_config.json'}: {out} holds a reproduction run with other settings (epochs 1, not 2)" in err
    monkeypatch.setenv("MUSICGENRE_THREADS", "2")  # its parts finished: read back, not trained again on 2 threads
    assert main(args) == 0 and (out / "mfcc-net" / "metrics.json").stat().st_mtime_ns == mtime
    monkeypatch.delenv("MUSICGENRE_THREADS")
    capsys.readouterr()
    mine = tmp_path / "mine"
    (mine / "reports").mkdir(parents=True)
    (mine / "reports" / "notes.txt").write_text("mine")
    assert main([*args[:4], str(mine), *args[5:]]) == 2  # --out mine: a folder that is not a reproduction
    assert "holds none of a reproduction's parts" in capsys.readouterr().err
    assert [p.name for p in mine.rglob("*")] == ["reports", "notes.txt"]
    (out / "reproduce_config.json").write_text("[]")
    assert main(args) == 2 and "reproduce_config.json: expected a JSON object" in capsys.readouterr().err
    (out / "reproduce_config.json").unlink()  # as an earlier version left it: adopted, its parts read back
    assert main(args) == 0 and (out / "mfcc-net" / "metrics.json").stat().st_mtime_ns == mtime
    settings = json.loads((out / "reproduce_config.json").read_text())
    assert settings["epochs"] == 1 and settings["versions"]["torch"] == torch.__version__  # the software, beside
    assert (out / "mfcc-net" / "metrics.json").stat().st_mtime_ns == mtime
    capsys.readouterr()
    X = np.load(small_mfcc_root / "train/mfccs/X.npy")
    np.save(small_mfcc_root / "train/mfccs/X.npy", X[::-1])  # the data under the same root changed
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {out / 'reproduce_config.json'}: {out} holds a reproduction begun on "
                                       f"other data: what {small_mfcc_root.resolve()} holds has changed since; pass "
                                       "another --out, or delete it to start over\n")
    np.save(small_mfcc_root / "train/mfccs/X.npy", X)
    (out / "mfcc-net" / "metrics.json").rename(tmp_path / "metrics.json")  # a part changed by hand
    assert main(args) == 2
    assert capsys.readouterr().err == (f"error: {out / 'mfcc-net'}: not a finished run (no metrics.json): delete it, "
                                       "and rerun to train it anew\n")
    (tmp_path / "metrics.json").rename(out / "mfcc-net" / "metrics.json")
    config = json.loads((out / "mfcc-net" / "config.json").read_text())
    (out / "mfcc-net" / "config.json").write_text(json.dumps({**config, "config": {**config["config"], "lr": 0.01}}))
    assert main(args) == 2  # as a recipe changed since would be: not read back as the study's run
    assert capsys.readouterr().err == (f"error: {out / 'mfcc-net'}: a run of other settings (lr 0.01, not 0.002): delete "
                                       "it, and rerun to train it anew\n")
    (out / "mfcc-net" / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    (out / "devices.json").write_text('[{"device": "cpu", "available": true}]')  # damaged or edited
    assert main(args) == 2
    assert capsys.readouterr().err == f"error: {out / 'devices.json'}: row 1: 'name' is missing\n"


def test_reproduce_sweeps_the_cnn_where_melgrams_exist(mel_root, small_mfcc_root, tmp_path, capsys):
    for split in ["train", "val"]:
        (mel_root / split / "mfccs").symlink_to(small_mfcc_root / split / "mfccs")
    out = tmp_path / "study"
    assert main(["reproduce", "--data", str(mel_root), "--out", str(out), "--seeds", "1", "--epochs", "1",
                 "--optimizers", "adagrad"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("MFCC net (the study's settings, seed 0)\nCNN on mel-spectrograms (the study's settings with "
                           "Adagrad, seed 0)\noptimizer sweep on mel-cnn\ndevice comparison\n")  # each part as it begins
    cnn_row = next(line for line in text.splitlines() if line.startswith("| CNN, Adagrad |"))
    assert cnn_row.split("|")[4].strip() != "-"
    assert json.loads((out / "sweep" / "sweep_config.json").read_text())["base"]["model"] == "mel-cnn"
    assert (out / "reports" / "mel-cnn" / "mel_examples.png").is_file()


def test_reproduce_checks_options_and_data_before_training_or_making_out(small_mfcc_root, tmp_path, capsys, monkeypatch):
    import numpy as np

    from musicgenre import runs
    from musicgenre.config import OPTIMIZERS

    trained = []
    monkeypatch.setattr(runs, "train", lambda *a, **k: trained.append(a))
    out = tmp_path / "study"
    assert main(["reproduce", "--data", str(small_mfcc_root), "--out", str(out), "--optimizers", "sgd,Foo"]) == 2
    assert capsys.readouterr().err == ("error: musicgenre reproduce: unknown optimizer 'Foo': choose one of "
                                       f"{', '.join(OPTIMIZERS)} (see musicgenre reproduce --help)\n")
    X = np.load(small_mfcc_root / "val/mfccs/X.npy")
    X[0, 0] = np.inf
    np.save(small_mfcc_root / "val/mfccs/X.npy", X)
    assert main(["reproduce", "--data", str(small_mfcc_root), "--out", str(out), "--optimizers", "sgd"]) == 2
    assert "val/mfccs/X.npy" in capsys.readouterr().err
    (small_mfcc_root / "val").rename(tmp_path / "aside")
    assert main(["reproduce", "--data", str(small_mfcc_root), "--out", str(out), "--optimizers", "sgd"]) == 2
    assert capsys.readouterr().err == (f"error: {small_mfcc_root.resolve()}: no val split of mfcc features, "
                                       "which reproduce scores every part on\n")
    assert trained == [] and not out.exists()


def test_reproduce_refuses_a_run_that_learned_nothing_as_train_does(small_mfcc_root, tmp_path, capsys):
    """Inputs of 1e30 make the study's MFCC net diverge in its first epoch: its initial weights would have been
    saved and reported as our figure."""
    X = np.load(small_mfcc_root / "train/mfccs/X.npy")
    np.save(small_mfcc_root / "train/mfccs/X.npy", X * 1e30)
    out = tmp_path / "study"
    assert main(["reproduce", "--data", str(small_mfcc_root), "--out", str(out), "--seeds", "1", "--epochs", "1",
                 "--optimizers", "sgd"]) == 2
    assert "training diverged in epoch 1" in capsys.readouterr().err
    assert not (out / "mfcc-net").exists()


def test_a_bar_in_a_genre_name_stays_inside_its_table_cell():
    from musicgenre.tables import markdown_table

    table = markdown_table(("Genre", "F1"), [("r|b", "0.500")], "lr")
    assert table.splitlines() == ["| Genre | F1 |", "|---|---:|", "| r\\|b | 0.500 |"]


def test_a_report_of_many_genres_keeps_its_figures_small(tmp_path):
    """100 genres had made a 14,000-pixel confusion figure (7.5 GB of memory, 39 s)."""
    rng = np.random.default_rng(0)
    genres = np.array([f"genre{i:03d}" for i in range(100)])
    write_split(tmp_path / "data", "train", "mfcc", rng.normal(size=(400, 26)), genres[np.arange(400) % 100])
    write_split(tmp_path / "data", "val", "mfcc", rng.normal(size=(200, 26)), genres[np.arange(200) % 100])
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "1", "--seed", "0"]) == 0
    report = build_report(tmp_path / "run", tmp_path / "rep")
    height, width = matplotlib.image.imread(report / "confusion.png").shape[:2]
    assert max(height, width) < 2500


def test_a_long_genre_name_is_cut_in_the_figures_and_whole_in_the_tables(tmp_path, capsys):
    """A 200-character genre folder's name left no room for the plots: matplotlib printed its warnings (4 lines)."""
    rng = np.random.default_rng(0)
    genres = np.array(["hip hop", "música clásica", "g" * 200])
    for split, n in [("train", 300), ("val", 90)]:
        write_split(tmp_path / "data", split, "mfcc", rng.normal(size=(n, 26)), genres[np.arange(n) % 3])
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = build_report(tmp_path / "run", tmp_path / "rep")
    assert "g" * 200 in (report / "report.md").read_text()
    from musicgenre.report import labels

    assert labels(["hip hop", "g" * 30, "g" * 31]) == ["1. hip hop", f"2. {'g' * 23}…", f"3. {'g' * 23}…"]  # told apart
    assert labels(["hip hop", "g" * 30]) == ["hip hop", f"{'g' * 23}…"]


def test_a_pipe_where_a_runs_json_should_be_is_refused_not_read_forever(tmp_path, small_mfcc_root):
    import os

    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1", "--seed", "0"]) == 0
    (run / "history.json").unlink()
    os.mkfifo(run / "history.json")  # report waited on it forever
    with pytest.raises(MusicGenreError, match=r"history.json: not a regular file \(a device, pipe or socket\), so not a JSON file$"):
        build_report(run, tmp_path / "report")
    (run / "config.json").unlink()
    os.mkfifo(run / "config.json")  # was "missing: ... is not a musicgenre run directory"
    with pytest.raises(MusicGenreError, match=r"config.json: not a regular file \(a device, pipe or socket\), so not a JSON file$"):
        load_run(run)
