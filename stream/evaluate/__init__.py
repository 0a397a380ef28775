"""Verification and open-set identification of a model on a dataset: ``facestream eval``.

``pairs`` builds the pair list (LFW's ``pairs.txt`` or a seeded balanced one), each image's face is
embedded through the one photo path (``stream.photos``), ``protocol`` scores distances by
the FaceNet paper's 10-fold LFW protocol (pure numpy), ``openset`` scores a gallery against probes,
``calibration`` writes a calibrated threshold into the model's manifest, ``plot`` draws ROC curves.
``videos`` reads video pairs (YouTube Faces' layout and splits, or labelled saved tracks) and
``video_scores`` gives each pair one distance from its videos' first N frames, for the same protocol.
"""
