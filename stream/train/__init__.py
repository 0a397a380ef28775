"""`facestream train`: learn a face embedding with FaceNet's triplet loss (needs ``facestream[train]``).

One file per job: ``mining`` (triplet selection and losses), ``angular`` (the margin-softmax
alternative), ``data`` (crops detected and aligned once, cached; P x K sampling; augmentation),
``track_dataset`` (unlabeled footage: one track = one person, co-occurring tracks = different people),
``backbones`` (MobileFaceNet, FaceNet InceptionResnetV1, an installed ONNX model such as facenet-casia),
``onnx_module`` (an ONNX graph run as a trainable torch module),
``verify`` (held-out pairs scored by the 10-fold protocol of ``stream.evaluate.protocol``),
``loop`` (epochs, checkpoints, progress) and ``export`` (ONNX + manifest into the model store).
Only ``data``, ``track_dataset`` and ``verify`` work without PyTorch.
"""
