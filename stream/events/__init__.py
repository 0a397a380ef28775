"""Events: the typed, versioned messages facestream publishes (ZeroMQ, JSONL)."""
