"""Device comparison: the same seeded configuration trained on each device (the study's CPU vs GPU table)."""

from __future__ import annotations

import platform
import re
from dataclasses import replace
from pathlib import Path

import torch

from musicgenre.config import CUDA_DEVICE, TrainConfig
from musicgenre.datasets import load_dataset
from musicgenre.errors import MusicGenreError, SettingError
from musicgenre.io import read_json
from musicgenre.runs import NUMBER, check_fields
from musicgenre.tables import markdown_table, plural
from musicgenre.training import check_learned, resolve_device, resolve_seed, train, train_threads


def device_available(device: str) -> bool:
    """Whether torch can train on `device` here (cpu always; cuda / cuda:N when that GPU exists)."""
    if device == "cpu":
        return True
    if re.fullmatch(CUDA_DEVICE, device):
        try:
            resolve_device(device)
        except MusicGenreError:
            return False
        return True
    raise SettingError(f"unknown device {device!r}: choose cpu, cuda or cuda:N")


def device_name(device: str, model: str) -> str:
    """What a device is, for the table: the GPU's name, or the CPU's with the thread count the model trains with."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    n = train_threads(model)
    return f"{platform.processor() or platform.machine()}, {plural(n, 'thread')}"


def compare_devices(cfg: TrainConfig, devices: list[str], data: str | None = None) -> list[dict]:
    """Train `cfg` once per device with one shared seed; one dict per device with its timings and
    validation scores, or available=False for a device this machine lacks."""
    devices = list(dict.fromkeys(d.strip() for d in devices if d.strip()))  # each device once, in the order given
    if not devices:
        raise SettingError("--devices: give at least one device, e.g. cpu,cuda")
    available = {d: device_available(d) for d in devices}  # unknown names fail before any loading
    if not any(available.values()):
        raise SettingError(f"--devices: none of {', '.join(devices)} is available here, so there is nothing to time")
    cfg = resolve_seed(cfg)
    splits = load_dataset(data, cfg.features)
    train_set, val_set = splits["train"], splits.get("val")
    rows = []
    for device in devices:
        if not available[device]:
            rows.append({"device": device, "available": False})
            continue
        result = train(replace(cfg, device=device), train_set, val_set)
        check_learned([result])
        epochs = len(result.history)
        metrics = result.metrics or {}
        rows.append({
            "device": device, "available": True, "name": device_name(device, cfg.model), "seed": cfg.seed, "epochs": epochs,
            "train_seconds": result.train_seconds, "seconds_per_epoch": result.train_seconds / epochs,
            "samples_per_second": len(train_set) * epochs / result.train_seconds,
            "val_accuracy": metrics.get("accuracy"), "val_f1": metrics.get("f1_macro"),
        })
    return rows


DEVICE_ROW = {"device": (str,), "available": (bool,)}
TIMED_ROW = {"name": (str,), "train_seconds": NUMBER, "seconds_per_epoch": NUMBER, "samples_per_second": NUMBER,
             "val_accuracy": (*NUMBER, type(None)), "val_f1": (*NUMBER, type(None))}


def read_device_rows(path: Path) -> list[dict]:
    """`compare_devices` rows saved as JSON (reproduce's devices.json), read back and checked."""
    rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        raise MusicGenreError(f"{path}: expected a non-empty list of device rows")
    for i, row in enumerate(rows):
        check_fields(row, DEVICE_ROW, f"{path}: row {i + 1}")
        if row["available"]:
            check_fields(row, TIMED_ROW, f"{path}: row {i + 1}")
    return rows


def device_table(rows: list[dict]) -> str:
    """A Markdown table of `compare_devices` rows."""
    cells = []
    for r in rows:
        if not r["available"]:
            cells.append((r["device"], "not available", "", "", "", "", ""))
            continue
        acc = f"{100 * r['val_accuracy']:.1f}%" if r["val_accuracy"] is not None else "-"
        f1 = f"{r['val_f1']:.3f}" if r["val_f1"] is not None else "-"
        cells.append((r["device"], r["name"], f"{r['train_seconds']:.2f}", f"{r['seconds_per_epoch']:.3f}",
                      f"{r['samples_per_second']:,.0f}", acc, f1))
    header = ("Device", "Hardware", "Train s", "s / epoch", "Samples / s", "Val accuracy", "Val macro F1")
    return markdown_table(header, cells, "llrrrrr") + "\n"
