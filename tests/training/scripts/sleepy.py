"""Each rank says it started, then sleeps until stopped. Usage: sleepy.py MARKER_DIR"""

import os
import sys
import time
from pathlib import Path

Path(sys.argv[1], f"started_{os.environ['RANK']}").write_text(str(os.getpid()))
time.sleep(120)
