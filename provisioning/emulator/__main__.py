"""python -m provisioning.emulator [--host 127.0.0.1] [--port 8010] [--state var/azure-emulator.json]"""

import argparse
import logging
import os
import sys
from pathlib import Path

# Before numpy loads OpenBLAS. A vector query is one matrix-vector product over a data set's
# passages (2,000 x 1,536: 0.16 ms on one thread). Split over OpenBLAS's threads, it waited for a
# thread to get a CPU that the streams, the portal and the worker were using, spinning meanwhile:
# about 14 ms per query at 20 chats in flight, the largest part of a grounded turn's search. The
# batch process, started from here, inherits it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uvicorn

from provisioning.emulator.app import build_app

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
# The emulator embeds and indexes batches of passages on worker threads while its event loop
# streams chat answers. Azure does the two on different machines; here they share one GIL, and a
# thread waits out this interval before the GIL is handed over: shorter than Python's 5 ms, so an
# answer's next chunk is not held up by a batch being indexed (as the portal does, for its
# database thread: portal/runtime/process.py).
SWITCH_INTERVAL_SECONDS = 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Azure OpenAI emulator (ARM + data plane).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument(
        "--state",
        type=Path,
        default=PROJECT_DIR / "var" / "azure-emulator.json",
        help="JSON file that keeps the emulator's state across restarts",
    )
    parser.add_argument("--log-level", default="info")
    arguments = parser.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(state_path=arguments.state)
    uvicorn.run(
        app, host=arguments.host, port=arguments.port, log_level=arguments.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
