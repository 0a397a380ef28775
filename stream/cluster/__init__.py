"""Unknown faces into people: saved unknown tracks (``saved_tracks``), grouping them (``methods``), output."""
