"""What runs saw, kept: the history store (store.py), its schema and migrations, and the recorder
that feeds it from a run (recorder.py). Queries: stream/cli/history_cmd.py."""
