"""Rank 1 never joins the all_reduce that rank 0 waits in. Usage: hang.py MARKER_DIR"""

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
if dist.get_rank() == 1:
    time.sleep(600)
Path(sys.argv[1], "entered_all_reduce").write_text("yes")
dist.all_reduce(torch.ones(1))
