"""Every rank uses the fluent API as a single-process script would. No torch."""

import os
import time

import slipway

rank = int(os.environ["RANK"])
with slipway.start_run():
    slipway.log_param("who", rank)
    slipway.log_metric("rank_value", rank)
    slipway.set_tag("tagged_by", rank)
if rank == 1:
    time.sleep(1.5)  # rank 0 is done by now; rank 1 ending its block must not end the run
    slipway.log_metric("late", 1.0)
time.sleep(float(os.environ.get("HOLD_SECONDS", "0")))
