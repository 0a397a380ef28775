"""Unknown faces into people: saved unknown tracks (``tracks``), grouping them (``methods``), output."""
