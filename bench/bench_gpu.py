"""Training on a CUDA GPU against the study's loop on the same GPU (batches collated by a DataLoader on
the CPU and copied over one by one, a host sync per validation batch), side by side in one process: the
MFCC MLP (one seed; ten seeds stacked) and the mel CNN (ours in fp32 and bf16, with and without
CUDA graphs), with the GPU's utilisation sampled while each trains; then ours on this machine's CPU against ours on the GPU, the
study's CPU-vs-GPU question. Without a CUDA GPU it says so and returns no rows.
Run: PYTHONPATH=src python bench/bench_gpu.py"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import torch

from bench_training import CNN, DATA, MLP, reference_train, row, synthetic_melgrams, timed
from musicgenre.config import RECIPES
from musicgenre.datasets import load_dataset
from musicgenre.training import train, train_seeds

GPU = "cuda"
CLIPS, EPOCHS = 8192, 3  # enough steps for the utilisation samples (NVML averages over up to a second)


class Utilisation:
    """Mean GPU utilisation (NVML: percent of time a kernel was running) sampled every 20 ms in the block."""

    def __enter__(self) -> "Utilisation":
        self.samples: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # no NVML here: report no figure rather than a wrong one
                return

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @property
    def percent(self) -> int | None:
        return round(float(np.mean(self.samples))) if self.samples else None


def with_utilisation(fn):
    """fn's wall time and result, and the GPU utilisation while it ran."""
    with Utilisation() as u:
        seconds, out = timed(fn)
    return seconds, out, u.percent


def main() -> list[dict]:
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to time")
        return []
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    data = load_dataset(DATA, "mfcc", ("train", "val"))
    tr, va = data["train"], data["val"]
    mlp = replace(MLP, device=GPU)
    train(replace(mlp, epochs=1), tr, va)  # warm-up: CUDA context, kernels, lazy imports
    reference_train(replace(mlp, epochs=1), tr, va, device=GPU)

    ref_s, (ref_acc, _), ref_util = with_utilisation(lambda: reference_train(mlp, tr, va, device=GPU))
    eager_s, eager, eager_util = with_utilisation(lambda: train(replace(mlp, cuda_graphs=False), tr, va))
    ours_s, ours, ours_util = with_utilisation(lambda: train(mlp, tr, va))
    rows = [
        row("gpu: mlp 30 epochs vs study loop on the GPU", ref_s, ours_s, reference_acc=ref_acc,
            ours_acc=ours.metrics["accuracy"], reference_gpu_util=ref_util, ours_gpu_util=ours_util),
        row("gpu: mlp 30 epochs, ours without vs with CUDA graphs", eager_s, ours_s, eager_acc=eager.metrics["accuracy"],
            graphs_acc=ours.metrics["accuracy"], eager_gpu_util=eager_util, graphs_gpu_util=ours_util),
    ]
    seeds_s, runs, seeds_util = with_utilisation(lambda: train_seeds(mlp, list(range(10)), tr, va))
    rows.append(row("gpu: mlp 10 seeds together vs ONE study-loop run on the GPU", ref_s, seeds_s,
                    ours_acc_mean=round(float(np.mean([r.metrics["accuracy"] for r in runs])), 4), ours_gpu_util=seeds_util))
    best = replace(RECIPES["mfcc-mlp-log"], seed=0, device=GPU)
    best_eager_s, best_eager = timed(lambda: train(replace(best, cuda_graphs=False), tr, va))
    best_s, best_run = timed(lambda: train(best, tr, va))
    rows.append(row("gpu: mfcc-mlp-log recipe (80 epochs, mixup, cosine), ours without vs with CUDA graphs", best_eager_s, best_s,
                    eager_acc=best_eager.metrics["accuracy"], graphs_acc=best_run.metrics["accuracy"]))
    cpu_s, cpu = timed(lambda: train(replace(mlp, device="cpu"), tr, va))
    rows.append(row("mlp 30 epochs, ours: CPU vs GPU", cpu_s, ours_s, cpu_acc=cpu.metrics["accuracy"],
                    gpu_acc=ours.metrics["accuracy"]))

    mel = synthetic_melgrams(CLIPS)
    cnn = replace(CNN, epochs=EPOCHS, device=GPU)
    reference_train(replace(cnn, epochs=1), mel, mel, device=GPU)  # warm-up: cuDNN for each loop and precision
    for precision in ("fp32", "bf16"):
        for batch in (16, 256):
            train(replace(cnn, epochs=1, precision=precision, batch_size=batch), mel, mel)
    _, (ref_acc, ref_train_s), ref_util = with_utilisation(lambda: reference_train(cnn, mel, mel, device=GPU))
    samples = EPOCHS * CLIPS
    gpu_runs = {}
    for precision, batch, graphs in (("fp32", 16, False), ("fp32", 16, True), ("bf16", 16, True), ("bf16", 256, True)):
        cfg = replace(cnn, precision=precision, batch_size=batch, cuda_graphs=graphs)
        _, ours, util = with_utilisation(lambda cfg=cfg: train(cfg, mel, mel))
        gpu_runs[precision, batch, graphs] = ours
        how = f"{precision}, {'CUDA graphs' if graphs else 'no CUDA graphs'}"
        if batch != 16:
            how += f", batch {batch} (another recipe: the GPU's headroom)"
        rows.append(row(f"gpu: mel-cnn training steps, ours in {how} vs study loop (samples/s gain)",
                        ref_train_s, ours.train_seconds, reference_samples_per_s=round(samples / ref_train_s),
                        ours_samples_per_s=round(samples / ours.train_seconds), reference_gpu_util=ref_util,
                        ours_gpu_util=util, reference_acc=ref_acc, ours_acc=ours.metrics["accuracy"]))
    study = replace(RECIPES["mel-cnn"], seed=0, epochs=1, device=GPU)  # the study's best CNN run: Adagrad
    study_eager = train(replace(study, cuda_graphs=False), mel, mel)
    study_graphs = train(study, mel, mel)
    rows.append(row("gpu: mel-cnn recipe (the study's Adagrad run), one epoch of training steps, without vs with CUDA graphs",
                    study_eager.train_seconds, study_graphs.train_seconds, eager_acc=study_eager.metrics["accuracy"],
                    graphs_acc=study_graphs.metrics["accuracy"]))
    cpu = train(replace(cnn, epochs=1, device="cpu"), mel, mel)
    gpu_epoch_s = gpu_runs["fp32", 16, True].train_seconds / EPOCHS
    rows.append(row("mel-cnn one epoch of training steps, ours in fp32: CPU vs GPU", cpu.train_seconds, gpu_epoch_s,
                    cpu_samples_per_s=round(CLIPS / cpu.train_seconds), gpu_samples_per_s=round(CLIPS / gpu_epoch_s)))
    return rows


if __name__ == "__main__":
    main()
