"""Verification and open-set identification of a model on a dataset: ``facestream eval``.

``pairs`` builds the pair list (LFW's ``pairs.txt`` or a seeded balanced one), ``images`` embeds
each image's face through the same detect+align path as ``run``, ``protocol`` scores distances by
the FaceNet paper's 10-fold LFW protocol (pure numpy), ``openset`` scores a gallery against probes,
``calibration`` writes a calibrated threshold into the model's manifest, ``plot`` draws ROC curves.
"""
