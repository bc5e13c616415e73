"""A test-time-compute sweep: `ray job submit --working-dir . -- python experiments/tts_sweep.py [preset] [key=value ...]`."""
import sys

from _entry import run_preset

if __name__ == "__main__":
    sys.exit(run_preset("tts"))
