"""A speedrun replay: `ray job submit --working-dir . -- python experiments/speedrun_replay.py [preset] [key=value ...]`."""
import sys

from _entry import run_preset

if __name__ == "__main__":
    sys.exit(run_preset("speedrun"))
