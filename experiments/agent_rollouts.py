"""Research-agent rollouts: `ray job submit --working-dir . -- python experiments/agent_rollouts.py [preset] [key=value ...]`."""
import sys

from _entry import run_preset

if __name__ == "__main__":
    sys.exit(run_preset("agents"))
