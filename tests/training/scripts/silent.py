"""Reports nothing and logs nothing: a job is more than its metrics."""

import time

time.sleep(0.2)
