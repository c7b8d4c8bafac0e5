"""python -m provisioning.emulator [--host 127.0.0.1] [--port 8010] [--state var/azure-emulator.json]"""

import argparse
import logging
from pathlib import Path

import uvicorn

from provisioning.emulator.app import build_app

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent


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
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(state_path=arguments.state)
    uvicorn.run(
        app, host=arguments.host, port=arguments.port, log_level=arguments.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
