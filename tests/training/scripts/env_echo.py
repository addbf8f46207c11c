"""Writes what this worker sees (argv, torchrun's environment, Slipway's) to OUT/rank_<r>.json.

No torch: this runs in a second. Usage: env_echo.py OUT [ARGS...]
"""

import json
import os
import sys
from pathlib import Path

NAMES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "OMP_NUM_THREADS",
    "SLIPWAY_RUN_ID",
    "SLIPWAY_TRAINING_RUN_ID",
    "SLIPWAY_TRACKING_URI",
    "SLIPWAY_TRAINING_BACKEND",
    "SLIPWAY_TRAINING_ARTIFACT_URI",
)
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
seen = {
    "argv": sys.argv,
    "name": __name__,
    "path0": sys.path[0],
    "file": __file__,
    "env": {name: os.environ.get(name) for name in NAMES},
}
(out / f"rank_{os.environ['RANK']}.json").write_text(json.dumps(seen))
print(f"rank {os.environ['RANK']} says hello")
print(f"rank {os.environ['RANK']} to stderr", file=sys.stderr)
