"""Device comparison on this machine: CPU figures, absent devices reported rather than failing."""

from __future__ import annotations

import re

import pytest
import torch

from musicgenre.benchmark import compare_devices, device_table
from musicgenre.cli import main
from musicgenre.config import TrainConfig
from musicgenre.datasets import load_dataset
from musicgenre.training import train

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
def test_compare_devices_cpu_figures_and_missing_cuda(study_data):
    cfg = TrainConfig(epochs=2, seed=3)
    rows = compare_devices(cfg, ["cpu", "cuda", " cpu"], str(study_data))
    assert [r["device"] for r in rows] == ["cpu", "cuda"]  # each device once
    cpu, cuda = rows
    assert cuda == {"device": "cuda", "available": False}
    assert cpu["available"] and cpu["epochs"] == 2 and cpu["seed"] == 3
    assert cpu["samples_per_second"] == pytest.approx(3200 * 2 / cpu["train_seconds"])
    assert cpu["seconds_per_epoch"] == pytest.approx(cpu["train_seconds"] / 2)
    # the same seeded run as `train` on the CPU gives
    data = load_dataset(study_data, "mfcc")
    again = train(TrainConfig(epochs=2, seed=3, device="cpu"), data["train"], data["val"])
    assert cpu["val_accuracy"] == again.metrics["accuracy"] and cpu["val_f1"] == again.metrics["f1_macro"]
    table = device_table(rows)
    assert "| cuda | not available |" in table and f"{100 * cpu['val_accuracy']:.1f}%" in table


@no_cuda
def test_bench_devices_cli(study_data, capsys):
    assert main(["bench-devices", "--data", str(study_data), "--epochs", "1", "--seed", "0", "--devices", "cpu,cuda"]) == 0
    out = capsys.readouterr().out
    assert "| cpu |" in out and "| cuda | not available |" in out and "seed 0 (--seed 0 repeats it)" in out
    assert main(["bench-devices", "--data", str(study_data), "--epochs", "1", "--devices", "cuda"]) == 2
    assert "--devices: none of cuda is available here, so there is nothing to time" in capsys.readouterr().err
    assert main(["bench-devices", "--data", str(study_data), "--epochs", "1", "--devices", "cpu"]) == 0
    assert re.search(r"^seed \d+ \(--seed \d+ repeats it\)$", capsys.readouterr().out, re.M)  # drawn, shown


def test_unknown_device_is_one_line_error(study_data, capsys):
    assert main(["bench-devices", "--data", str(study_data), "--epochs", "1", "--devices", "cpu,tpu"]) == 2
    assert capsys.readouterr().err == ("error: musicgenre bench-devices: unknown device 'tpu': choose cpu, cuda or cuda:N "
                                       "(see musicgenre bench-devices --help)\n")


def test_bench_devices_refuses_device_which_it_would_ignore(study_data, capsys):
    """--device would be replaced by each of --devices: refused rather than dropped (a --device cuda on a
    machine without one used to fail though nothing would run there)."""
    assert main(["bench-devices", "--data", str(study_data), "--device", "cuda", "--devices", "cpu"]) == 2
    assert capsys.readouterr().err == ("error: musicgenre bench-devices: --device cuda is not taken: bench-devices trains on each "
                                       "device of --devices (see musicgenre bench-devices --help)\n")
