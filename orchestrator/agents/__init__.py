"""Research-agent rollouts of the speedrunning benchmark: scaffolds, coders, a durable journal."""
