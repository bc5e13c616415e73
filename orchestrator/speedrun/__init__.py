"""NanoGPT speedrun replays: records (records.py), log parsing (logparse.py), running one job with
live early stopping (job.py), timing statistics (stats.py), FSR (fsr.py), the replay loop on Ray
(replay.py) and the CPU ladder's data (shakespeare_data.py). The Ray launcher is actors/trainer.py."""
