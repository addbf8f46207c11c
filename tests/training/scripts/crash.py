"""Rank 1 raises after writing to both streams; rank 0 waits to be stopped. No torch."""

import os
import sys
import time

rank = int(os.environ["RANK"])
print(f"rank {rank} out", flush=True)
print(f"rank {rank} err", file=sys.stderr, flush=True)
if rank == 1:
    time.sleep(0.5)
    raise ValueError("boom on rank 1")
time.sleep(60)
