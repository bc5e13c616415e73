"""Any preset: `ray job submit --working-dir . -- python experiments/run.py <preset> [key=value ...]`."""
import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
