"""Training steps replayed as CUDA graphs. A batch-16 step of these small nets is about 90 kernels of a
few microseconds each: on a GPU the time goes to launching them from Python, not to arithmetic (the
profile in bench/README.md). A captured step is one launch."""

from __future__ import annotations

import inspect
import warnings
from collections import Counter
from typing import Callable

import torch
from torch.torch_version import TorchVersion

from musicgenre.config import TrainConfig

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs, targets) -> detached loss


def tensor_lr(cfg: TrainConfig) -> bool:
    """Whether the optimizer takes its learning rate as a GPU tensor, which a schedule then updates in
    place (torch >= 2.4) so that replayed graphs read each epoch's value."""
    return cfg.optimizer in ("Adam", "AdamW") and TorchVersion(torch.__version__) >= "2.4"


def can_graph(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether `cfg`'s steps can be captured on `device`: a CUDA GPU, an optimizer whose state lives on
    the GPU (`capturable`; plain SGD keeps none, and Adagrad's one CPU value, its step count, does not
    enter its update at lr_decay 0, which is ours), and a learning rate that is constant or a cosine
    schedule written into a tensor lr. Augmentation runs before the captured step, on its inputs."""
    optimizer = getattr(torch.optim, cfg.optimizer)
    state_on_gpu = cfg.optimizer in ("SGD", "Adagrad") or "capturable" in inspect.signature(optimizer).parameters
    lr_replayable = cfg.scheduler == "none" or (cfg.scheduler == "cosine" and tensor_lr(cfg))
    return device.type == "cuda" and cfg.cuda_graphs and state_on_gpu and lr_replayable


class GraphedStep:
    """`step` as a CUDA graph per shape of its inputs: each shape's first WARMUP steps run eagerly on a side
    stream (as torch.cuda.graph asks, so lazy initialisation stays out of the graph), the next is
    captured, and from then on a step copies its batch into the graph's inputs and replays it.
    Every call is a real training step: warm-up steps train the model too."""

    WARMUP = 3

    def __init__(self, step: Step) -> None:
        self.step = step
        self.eager_calls: Counter[tuple] = Counter()
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.cuda.device(x.device):  # streams and capture on the batch's GPU (cuda:N), not the current one
            return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (x.shape, y.shape, y.dtype)  # targets are class indices, or class probabilities under mixup
        if shape not in self.graphs and self.eager_calls[shape] < self.WARMUP:
            self.eager_calls[shape] += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*capturable=True.*")  # torch's note that these steps are not captured
                loss = self.step(x, y)
            torch.cuda.current_stream().wait_stream(side)
            return loss
        if shape not in self.graphs:
            graph, x_in, y_in = torch.cuda.CUDAGraph(), x.clone(), y.clone()
            with torch.cuda.graph(graph):  # records the kernels without running them
                loss = self.step(x_in, y_in)
            self.graphs[shape] = graph, x_in, y_in, loss
        graph, x_in, y_in, loss = self.graphs[shape]
        x_in.copy_(x)
        y_in.copy_(y)
        graph.replay()
        return loss.clone()  # the graph overwrites its output at the next replay
