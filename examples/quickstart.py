"""Train a small logistic regression with numpy and track it with Slipway.

Run it twice with different learning rates and compare the runs:

    python examples/quickstart.py --lr 0.1
    slipway runs list --experiment quickstart --order-by "metrics.loss ASC"
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import slipway


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "label": y})


def train(data: pd.DataFrame, lr: float, steps: int) -> None:
    x = data[["x0", "x1"]].to_numpy()
    y = data["label"].to_numpy()
    w = np.zeros(2)
    b = 0.0
    for step in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
        w -= lr * x.T @ (p - y) / len(y)
        b -= lr * float(np.mean(p - y))
        slipway.log_metric("loss", loss, step=step)
    accuracy = float(np.mean((p > 0.5) == y))
    slipway.log_metric("accuracy", accuracy)
    slipway.log_dict({"w": w.tolist(), "b": b}, "model/weights.json")
    print(f"lr={lr}: loss={loss:.4f} accuracy={accuracy:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()

    slipway.set_experiment("quickstart")
    data = make_data(args.rows)
    for lr in args.lr:
        with slipway.start_run(run_name=f"lr-{lr}"):
            slipway.log_params({"lr": lr, "steps": args.steps, "rows": args.rows})
            slipway.log_input(data, name="synthetic-train", context="train")
            train(data, lr, args.steps)


if __name__ == "__main__":
    main()
