"""The multi-process wiring: shared-memory frame rings, workers, batching and the supervisor.

Stages themselves (sources, detector, aligner, engine, tracker, voting, events) are plain classes
elsewhere; this package only moves their inputs and outputs between processes.
"""
