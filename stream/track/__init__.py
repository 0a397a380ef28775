"""Per-source face tracking: SORT (IoU + Kalman), and the re-embedding cadence it enables."""
