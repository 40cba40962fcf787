"""Run directories and output folders: what load_run refuses in config.json and metrics.json, and how
--out is checked and replaced (never under a file, never an input or the current folder, no leftovers)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from musicgenre.cli import main
from musicgenre.errors import MusicGenreError
from musicgenre.runs import load_run


@pytest.fixture
def run_dir(small_mfcc_root, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(run), "--epochs", "1", "--seed", "0"]) == 0
    return run


def edit_json(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(config=None), "config.json: 'config' is null, expected a JSON object"),
    (lambda d: d["config"].update(features="melgram"), "config.json: 'config': model mfcc-mlp reads mfcc features, not melgram"),
    (lambda d: d["config"].update(lr="abc"), "config.json: 'config': lr must be a number, not 'abc'"),
    (lambda d: d["config"].update(standardize=1), "config.json: 'config': standardize must be True or False, not 1"),
    (lambda d: d["config"].update(model="zzz"), "config.json: 'config': unknown model 'zzz'"),
    (lambda d: d.update(classes="blues"), "config.json: 'classes' is \"blues\", expected a list"),
    (lambda d: d.update(classes=["blues", 2, "hiphop", "rock"]), "config.json: 'classes' must be a list of distinct genre names"),
    (lambda d: d.update(classes=["blues", " rock", "hiphop", "jazz"]), "config.json: 'classes' must be a list of distinct genre names"),
    (lambda d: d["classes"].append("jazz"), "config.json: lists the genres blues, classical, hiphop, rock_metal_hardrock, jazz, but "
                                            ".*model.safetensors was trained for blues, classical, hiphop, rock_metal_hardrock"),
    (lambda d: d.update(sweep_metrics={"n": 3}), "config.json: 'sweep_metrics': 'accuracy' is missing"),
    (lambda d: d.update(training_splits=["train", "dev"]), "config.json: 'training_splits' must list splits among"),
    (lambda d: d.update(training_splits=[["train"]]), "config.json: 'training_splits' must list splits among"),
    # the record of the data it was trained on, read back to score it on that data and to tell whether that changed
    (lambda d: d.update(data=[1]), "config.json: 'data' is \\[1\\], expected a JSON object or null"),
    (lambda d: d["data"].update(splits=5), "config.json: 'data': 'splits' is 5, expected a list"),
    (lambda d: d["data"].update(splits="tv"), "config.json: 'data': 'splits' is \"tv\", expected a list"),
    (lambda d: d["data"].update(splits=["train", "dev"]), "config.json: 'data': 'splits' must list splits among"),
    (lambda d: d["data"].update(root=3), "config.json: 'data': 'root' is 3, expected a string"),
    (lambda d: d["data"].update(root=""), "config.json: 'data': 'root' is empty"),
])
def test_load_run_names_config_json_and_the_problem(run_dir, change, message):
    edit_json(run_dir / "config.json", change)
    with pytest.raises(MusicGenreError, match=message) as err:
        load_run(run_dir)
    assert "\n" not in str(err.value)


def test_load_run_refuses_metrics_that_are_not_an_object_and_non_finite_weights(run_dir):
    (run_dir / "metrics.json").write_text("[1]")
    with pytest.raises(MusicGenreError, match=r"metrics.json: expected a JSON object, not \[1\]"):
        load_run(run_dir)
    (run_dir / "metrics.json").unlink()
    from safetensors.torch import load_file, save_file

    state = load_file(str(run_dir / "model.safetensors"))
    state["body.layers.0.weight"][0, 0] = float("nan")
    save_file(state, str(run_dir / "model.safetensors"), metadata=OURS)
    with pytest.raises(MusicGenreError, match="model.safetensors: holds NaN or infinite weights"):
        load_run(run_dir)


OURS = {"musicgenre-run": "mfcc-mlp"}  # the tag save_weights writes for the run_dir fixture's model


def test_weights_tagged_as_runs_saved_before_november_2026_still_load(run_dir):
    """Earlier versions tagged weights {"kind": "musicgenre-run", "model": NAME}: their runs must still load."""
    from safetensors.torch import load_file, save_file

    path = run_dir / "model.safetensors"
    save_file(load_file(str(path)), str(path), metadata={"kind": "musicgenre-run", "model": "mfcc-mlp"})
    assert load_run(run_dir).config.model == "mfcc-mlp"
    save_file(load_file(str(path)), str(path), metadata={"musicgenre-run": "mfcc-mlp"})  # before December 2026
    assert load_run(run_dir).config.model == "mfcc-mlp"
    edit_json(run_dir / "config.json", lambda d: d["classes"].append("jazz"))  # such weights carry no genres: counted
    with pytest.raises(MusicGenreError, match="config.json: lists 5 classes, but .*model.safetensors holds a model of 4 classes"):
        load_run(run_dir)
    edit_json(run_dir / "config.json", lambda d: d["classes"].pop())
    save_file(load_file(str(path)), str(path), metadata={"kind": "musicgenre-run", "model": "mfcc-mlp-log"})
    with pytest.raises(MusicGenreError, match="holds a mfcc-mlp-log model, but .*config.json names model mfcc-mlp"):
        load_run(run_dir)


@pytest.mark.parametrize("change, metadata, message", [
    # a model file of another kind with the same tensor shapes: mfcc-mlp-plus and mfcc-mlp-log differ only in
    # an input transform without weights, so only the tag tells them apart
    (None, {"musicgenre-run": "mfcc-mlp-log"}, "holds a mfcc-mlp-log model, but .*config.json names model mfcc-mlp"),
    (None, None, "holds weights not written by musicgenre, but .*config.json names model mfcc-mlp"),
    (None, {"musicgenre-run": json.dumps({"model": "mfcc-mlp", "classes": 5})}, "holds weights not written by musicgenre, but"),
    (None, {"musicgenre-run": json.dumps({"model": "mfcc-mlp", "classes": []})}, "holds weights not written by musicgenre, but"),
    (None, {"musicgenre-run": json.dumps({"model": ["mfcc-mlp"], "classes": None})}, "holds weights not written by musicgenre, but"),
    (lambda s: s.update({k: v.to(torch.int32) for k, v in s.items()}), OURS, "'body.layers.0.(weight|bias)' is torch.int32, not torch.float32"),
    (lambda s: s["temperature"].fill_(-1.0), OURS, "calibration temperature -1 .one calibrate could store lies from 0.001 to 1000"),
    (lambda s: s["temperature"].fill_(0.0), OURS, "calibration temperature 0 .one calibrate"),
    (lambda s: s["temperature"].fill_(1e30), OURS, "calibration temperature 1e\\+30 .one calibrate"),  # every prediction flat
    (lambda s: s.update(temperature=s["temperature"].reshape(1)), OURS, "its calibration temperature has shape \\(1,\\), not a single number"),
    (lambda s: s["std"][3].fill_(-2.0), OURS, "its input standardisation has a std of 0 or below"),
    (lambda s: s["std"][0].fill_(0.0), OURS, "its input standardisation has a std of 0 or below"),
])
def test_load_run_refuses_weights_of_another_kind_or_a_meaningless_temperature(run_dir, change, metadata, message):
    from safetensors.torch import load_file, save_file

    path = run_dir / "model.safetensors"
    state = load_file(str(path))
    if change is not None:
        change(state)
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(MusicGenreError, match=message) as err:
        load_run(run_dir)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_out_under_a_file_is_one_line_for_train_extract_and_report(small_mfcc_root, run_dir, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("hi")
    for args in (["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", str(afile / "sub")],
                 ["extract", str(tmp_path), "--out", str(afile / "x")],
                 ["report", str(run_dir), "--out", str(afile / "history.json")],
                 ["report", str(run_dir), "--out", str(afile / "history.json" / "x")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == f"error: {args[-1]}: {afile} is a file, not a folder (choose another --out)\n"
    afile.with_name("empty").touch()  # a file, even an empty one, is not a folder to write into
    for out in (afile, afile.with_name("empty")):
        assert main(["report", str(run_dir), "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"error: {out}: is a file, which the output folder would replace (choose another --out, or --overwrite: overwrite=True in Python)\n"
    assert afile.read_text() == "hi"


def test_an_out_under_a_dangling_link_is_one_line(run_dir, tmp_path, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert main(["report", str(run_dir), "--out", str(tmp_path / "dangling" / "x")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}/dangling/x: {tmp_path}/dangling is a link to nothing (choose another --out)\n"


def test_an_empty_out_is_one_line(small_mfcc_root, run_dir, tmp_path, capsys):
    for args in (["train", "--data", str(small_mfcc_root), "--epochs", "1"], ["extract", str(tmp_path)],
                 ["report", str(run_dir)], ["sweep", "--data", str(small_mfcc_root), "--epochs", "1"]):
        assert main([*args, "--out", ""]) == 2
        assert capsys.readouterr().err == "error: '': an empty path names no folder (--out)\n"


def test_an_out_where_no_folder_can_be_made_is_refused_before_any_work(small_mfcc_root, run_dir, tmp_path, capsys):
    """/proc takes no new folders, even from root (whom permission bits do not stop): said before training,
    in one line naming the --out given, not after the work with the temporary folder's name."""
    for args in (["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", "/proc/musicgenre-run"],
                 ["extract", str(tmp_path), "--out", "/proc/musicgenre-data"],
                 ["report", str(run_dir), "--out", "/proc/musicgenre-report"]):
        assert main(args) == 2
        out, err = capsys.readouterr()
        assert "epoch" not in out and re.fullmatch(rf"error: {args[-1]}: cannot be written \(.+ in /proc; choose another --out\)\n", err)


def test_out_current_folder_is_refused_without_leftovers(small_mfcc_root, tmp_path, monkeypatch, capsys):
    here = tmp_path / "here"
    here.mkdir()
    (here / "keep.txt").write_text("precious")
    monkeypatch.chdir(here)
    for out in (".", str(here), "sub/.."):
        assert main(["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", out, "--overwrite"]) == 2
        assert "is or holds the current folder" in capsys.readouterr().err
    assert main(["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", "..", "--overwrite"]) == 2
    assert sorted(p.name for p in here.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "here"]


def test_overwrite_never_replaces_an_input(small_mfcc_root, tmp_path, capsys):
    before = sorted(p.relative_to(small_mfcc_root) for p in small_mfcc_root.rglob("*"))
    for out in (small_mfcc_root, small_mfcc_root / "train", tmp_path):
        assert main(["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", str(out), "--overwrite"]) == 2
        assert f"overlaps the input {small_mfcc_root}" in capsys.readouterr().err
    assert sorted(p.relative_to(small_mfcc_root) for p in small_mfcc_root.rglob("*")) == before

    lib = tmp_path / "lib"
    (lib / "blues").mkdir(parents=True)
    (lib / "blues" / "song.wav").write_bytes(b"RIFF")
    for out in (lib, lib / "blues"):
        assert main(["extract", str(lib), "--out", str(out), "--overwrite"]) == 2
        assert f"overlaps the input {lib}" in capsys.readouterr().err
    assert (lib / "blues" / "song.wav").read_bytes() == b"RIFF"


def test_overwrite_never_replaces_a_device_pipe_or_link_to_one(small_mfcc_root, run_dir, tmp_path, capsys):
    """As root, `--out /dev/null --overwrite` once turned the system's /dev/null into a folder."""
    import os

    fifo, link = tmp_path / "pipe", tmp_path / "null"
    os.mkfifo(fifo)
    link.symlink_to("/dev/null")
    for out in (fifo, link, Path("/dev/null")):
        for args in (["train", "--data", str(small_mfcc_root), "--epochs", "1"], ["report", str(run_dir)]):
            assert main([*args, "--out", str(out), "--overwrite"]) == 2
            assert capsys.readouterr().err == f"error: {out}: is a device, pipe or socket, not a place for output (choose another --out)\n"
    assert fifo.is_fifo() and link.is_symlink() and Path("/dev/null").is_char_device()


def test_an_empty_run_path_is_not_the_current_folder(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(run_dir)  # inside a run: "" would have read it (and `calibrate` written into it)
    for args in (["evaluate", ""], ["calibrate", ""], ["report", "", "--out", str(tmp_path / "r")], ["ensemble", "", str(run_dir)]):
        assert main(args) == 2
        assert capsys.readouterr().err == "error: '': an empty path names no run directory\n", args


def test_overwrite_onto_a_file_leaves_nothing_behind(small_mfcc_root, tmp_path):
    afile = tmp_path / "out" / "afile"
    afile.parent.mkdir()
    afile.write_text("hi")
    assert main(["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", str(afile), "--overwrite"]) == 0
    assert load_run(afile).config.epochs == 1
    assert [p.name for p in afile.parent.iterdir()] == ["afile"]


def test_an_output_that_appears_while_it_is_written_is_not_replaced_without_overwrite(tmp_path):
    """--out is checked before the work (extract decodes for minutes): something written there meanwhile
    must survive the final rename unless --overwrite was given."""
    from musicgenre.io import write_dir

    out = tmp_path / "data"

    def fill(tmp):
        (tmp / "new.txt").write_text("new")
        out.mkdir()
        (out / "precious.txt").write_text("mine")

    with pytest.raises(MusicGenreError, match="data: appeared while this was being written"):
        write_dir(out, False, fill)
    assert [p.name for p in out.iterdir()] == ["precious.txt"] and [p.name for p in tmp_path.iterdir()] == ["data"]
    (out / "precious.txt").unlink()
    assert write_dir(out, False, lambda tmp: (tmp / "new.txt").write_text("new")) == out  # an empty folder: fine
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    dangling = tmp_path / "link"
    dangling.symlink_to(tmp_path / "nowhere")  # it was replaced by a folder; a link to a folder is written through
    with pytest.raises(MusicGenreError, match="link: is a link to nothing"):
        write_dir(dangling, False, lambda tmp: (tmp / "new.txt").write_text("new"))
    assert dangling.is_symlink()


def test_failed_save_is_one_line_and_leaves_no_temporary_folder(small_mfcc_root, tmp_path, monkeypatch, capsys):
    import musicgenre.runs as runs

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run"))

    monkeypatch.setattr(runs, "history_csv", broken)
    capsys.readouterr()
    assert main(["train", "--data", str(small_mfcc_root), "--epochs", "1", "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == f"error: [Errno 28] No space left on device: '{tmp_path / 'run'}'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_report_validates_run_dirs_as_evaluate_does(run_dir, tmp_path):
    from musicgenre.report import build_report

    broken = {
        "config.json": ('{"kind": "something-else"}', "config.json: not a musicgenre run configuration"),
        "metrics.json": ("[1]", r"metrics.json: expected a JSON object, not \[1\]"),
        "history.json": ('{"a": 1}', "history.json: expected a non-empty list of epoch records"),
    }
    for name, (text, message) in broken.items():
        bad = tmp_path / f"bad-{name}"
        shutil.copytree(run_dir, bad)
        (bad / name).write_text(text)
        with pytest.raises(MusicGenreError, match=message):
            build_report(bad, tmp_path / "rep")
    bad = tmp_path / "bad-epoch"
    shutil.copytree(run_dir, bad)
    (bad / "history.json").write_text('[{"epoch": "x"}]')
    with pytest.raises(MusicGenreError, match="history.json: epoch record 1: 'epoch' is \"x\", expected an integer"):
        build_report(bad, tmp_path / "rep")
    bad = tmp_path / "bad-metrics"
    shutil.copytree(run_dir, bad)
    edit_json(bad / "metrics.json", lambda d: d["val"].update(confusion_matrix=[[1]]))
    with pytest.raises(MusicGenreError, match=r"metrics.json: 'val': 'confusion_matrix' is not a 4 x 4 table of counts"):
        build_report(bad, tmp_path / "rep")
    for change, message in [(lambda d: d["val"].update(accuracy=float("nan")), "'val': 'accuracy' is NaN, expected a number"),
                            (lambda d: d["val"].update(f1_macro=1.5), "'val': accuracy and macro F1 must lie between 0 and 1"),
                            (lambda d: d.update(best_epoch=99), "'best_epoch' is 99, but the run has epochs 0 (its initial weights) to 1")]:
        edit_json(bad / "metrics.json", lambda d: d.update(json.loads((run_dir / "metrics.json").read_text())))
        edit_json(bad / "metrics.json", change)
        with pytest.raises(MusicGenreError, match=re.escape(message)):
            build_report(bad, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()  # checked before the report folder is made


def test_report_and_load_run_say_what_a_path_is_instead(run_dir, tmp_path):
    """A missing folder, a file, a folder of seed runs and the shipped model (validation figures, no training
    record) each get their own reason."""
    from musicgenre.predict import READY_MODEL
    from musicgenre.report import build_report

    with pytest.raises(MusicGenreError, match="nowhere: no such run or sweep directory$"):
        build_report(tmp_path / "nowhere", tmp_path / "rep")
    with pytest.raises(MusicGenreError, match="model.safetensors: a file, not a run directory$"):
        load_run(run_dir / "model.safetensors")
    seeds = tmp_path / "five"
    shutil.copytree(run_dir, seeds / "seed-0")  # without train --seeds' summary.json: runs, but not its seeds
    with pytest.raises(MusicGenreError, match="five: not a run directory, but it holds one: report on .*five/seed-0$"):
        build_report(seeds, tmp_path / "rep")
    for k in (1, 2, 10):
        shutil.copytree(run_dir, seeds / f"seed-{k}")
    with pytest.raises(MusicGenreError, match="five: holds 4 runs .seed-0, seed-1, seed-2, \\.\\.\\.., not one: report on one of them$"):
        build_report(seeds, tmp_path / "rep")
    with pytest.raises(MusicGenreError, match="metrics.json: holds no training record .'best_epoch' is missing.: "
                                              ".*ready_model was not written by train, sweep or reproduce$"):
        build_report(READY_MODEL, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_a_multi_seed_folder_says_how_to_use_its_runs(small_mfcc_root, audio_dir, tmp_path, capsys):
    out = tmp_path / "five"
    assert main(["train", "--data", str(small_mfcc_root), "--out", str(out), "--epochs", "1", "--seed", "0", "--seeds", "2"]) == 0
    with pytest.raises(MusicGenreError, match=rf"{out}: holds 2 runs \(seed-0, seed-1\), not one: pass one of them, or average them "
                                              rf"\(`musicgenre ensemble {out}/seed-0 {out}/seed-1`, or `--model ensemble:{out}/seed-0,{out}/seed-1`\)$"):
        load_run(out)
    assert load_run(out / "seed-1").config.seed == 1
    # so does a sweep's folder of one optimizer's seeds, and an ensemble spec may space its list
    (out / "summary.json").rename(out / "results.json")
    for k in (2, 10):  # listed in number order
        shutil.copytree(out / "seed-1", out / f"seed-{k}")
    with pytest.raises(MusicGenreError, match=rf"{out}: holds 4 runs \(seed-0, seed-1, seed-2, \.\.\.\), not one: .*`musicgenre ensemble {out}/seed-0 {out}/seed-1 \.\.\.`"):
        load_run(out)
    assert main(["predict", "--model", f"ensemble:{out}/seed-0, {out}/seed-1", str(audio_dir / "hiphop_fma_000002.mp3")]) == 0
    assert "hiphop_fma_000002.mp3" in capsys.readouterr().out
    assert main(["calibrate", str(out), "--data", str(small_mfcc_root)]) == 2  # one run's temperature: no ensemble hint
    assert capsys.readouterr().err == f"error: {out}: holds 4 runs (seed-0, seed-1, seed-2, ...), not one: pass one of them\n"
    for k in (1, 2, 10):  # a folder of one run
        shutil.rmtree(out / f"seed-{k}")
    with pytest.raises(MusicGenreError, match=rf"^{out}: not a run directory, but it holds one: pass {out}/seed-0$"):
        load_run(out)


def test_seeds_beyond_the_range_are_refused_before_training(small_mfcc_root, tmp_path, capsys):
    args = ["train", "--data", str(small_mfcc_root), "--out", str(tmp_path / "s"), "--seeds", "3", "--seed", str(2**32 - 2)]
    assert main(args) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == (f"error: musicgenre train: --seed {2**32 - 2} with --seeds 3: the last seed, {2**32}, is "
                                  "beyond 2**32 - 1 (see musicgenre train --help)\n")


def test_a_pipe_as_the_weights_file_is_refused_not_read_forever(run_dir):
    import os

    path = run_dir / "model.safetensors"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(MusicGenreError, match=r"model.safetensors: not a regular file \(a device, pipe or socket\), so not a weights file$"):
        load_run(run_dir)
    path.unlink()
    path.symlink_to("/dev/zero")  # read whole, it filled the memory
    with pytest.raises(MusicGenreError, match="so not a weights file$"):
        load_run(run_dir)


def test_folders_left_by_a_killed_command_are_not_runs(run_dir, tmp_path):
    """After `kill -9`, a .run.tmp-PID folder with a config.json was offered as a run to pass."""
    import shutil

    folder = tmp_path / "seeds"
    folder.mkdir()
    shutil.copytree(run_dir, folder / "seed-0")
    shutil.copytree(run_dir, folder / ".seed-1.tmp-42")
    with pytest.raises(MusicGenreError, match=f"not a run directory, but it holds one: pass {folder}/seed-0$"):
        load_run(folder, averaged=False)


def test_an_out_that_is_a_link_is_written_where_it_leads_by_every_command(small_mfcc_root, tmp_path):
    """train, report, compare and extract replaced the link with a folder (the run then on the wrong disk, the
    old run left behind in the target with --overwrite), where sweep and reproduce wrote through it."""
    target = tmp_path / "bigdisk" / "run"
    target.mkdir(parents=True)
    link = tmp_path / "run"
    link.symlink_to(target, target_is_directory=True)
    args = ["train", "--data", str(small_mfcc_root), "--epochs", "1", "--seed", "0", "--out", str(link)]
    assert main(args) == 0
    assert link.is_symlink() and (target / "model.safetensors").is_file()
    assert main(args + ["--overwrite", "--seed", "1"]) == 0
    assert link.is_symlink() and load_run(link).config.seed == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]  # nothing left beside it


def test_a_config_listing_other_genres_than_its_weights_is_refused(run_dir):
    """Genres reordered or renamed in config.json (or config.json beside another run's weights of the same
    model) were accepted: predict then named the wrong genres, and calibrate fitted a distorted temperature."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    for classes in (config["classes"][::-1], ["rock" if c == "rock_metal_hardrock" else c for c in config["classes"]]):
        path.write_text(json.dumps({**config, "classes": classes}))
        with pytest.raises(MusicGenreError, match=f"config.json: lists the genres {', '.join(classes)}, but .*model.safetensors "
                                                  "was trained for blues, classical, hiphop, rock_metal_hardrock"):
            load_run(run_dir)
