"""Recognition: the gallery of known people, per-track identity voting, and the stage that emits events."""
