"""The trial script of tune.yaml: trains a made-up model and prints its accuracy after each
epoch as ``accuracy=VALUE`` (Katib's StdOut metrics format), which ``slipway tune`` reads."""

from __future__ import annotations

import argparse
import math

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--layers", type=int, required=True)
parser.add_argument("--optimizer", choices=["sgd", "adam"], required=True)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

best_layers = 4 if args.optimizer == "adam" else 3
accuracy = 0.0
for epoch in range(args.epochs):
    target = 0.95 - abs(math.log10(args.lr) + 2) / 5 - abs(args.layers - best_layers) / 20
    accuracy += (target - accuracy) * 0.6
    loss = 1 - accuracy
    print(f"epoch {epoch}: accuracy={accuracy:.4f} loss={loss:.4f}", flush=True)
