"""Metrics sinks for the main process: JSONL (always), TensorBoard and Weights & Biases (optional)."""

from __future__ import annotations

import json
import math
import os
from typing import Any


class MetricsLogger:
    def __init__(self, out_dir: str, tensorboard: bool = True, wandb_project: str = "", config: dict | None = None,
                 enabled: bool = True, append: bool = False):
        self.enabled = enabled
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        os.makedirs(out_dir, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(os.path.join(out_dir, "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError("run.wandb_project is set but wandb is not installed: pip install wandb") from exc
            self._wandb = wandb.init(project=wandb_project, config=config or {}, dir=out_dir)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if self._tb is not None and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(row, step=step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; None marks "not measurable this step" (e.g. every judge call failed)
    return value


def read_metrics(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
