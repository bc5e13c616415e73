"""The AI-Scientist loop: `ray job submit --working-dir . -- python experiments/ai_scientist.py [preset] [key=value ...]`."""
import sys

from _entry import run_preset

if __name__ == "__main__":
    sys.exit(run_preset("ai-scientist"))
