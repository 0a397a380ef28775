"""Named landmark layouts: alignment and pose read points by name, whatever the detector's layout."""

from __future__ import annotations

import numpy as np
import pytest

from stream.align import FaceAligner
from stream.detect.dlib.facts import DLIB_5
from stream.faces import MEDIAPIPE_FACE, Faces, concat_faces
from stream.recognize.appearance import face_quality

BOX = [[100, 100, 200, 200]]
# One face in MediaPipe's points: right eye, left eye, nose tip, mouth centre, ears.
MP = np.array([[[130, 140], [170, 142], [152, 165], [150, 185], [105, 150], [195, 150]]], np.float32)
# The same face in dlib's: each eye's two corners around the same centre, the nose's base under its tip.
DLIB = np.array([[[178, 142], [162, 142], [122, 140], [138, 140], [152, 172]]], np.float32)


def test_points_by_name_and_as_means_of_others():
    assert np.allclose(DLIB_5.point(DLIB[0], "right_eye"), [130, 140])
    assert np.allclose(DLIB_5.point(DLIB, "left_eye"), [[170, 142]])
    assert DLIB_5.points(DLIB, ["nose_base", "right_eye"]).shape == (1, 2, 2)
    assert DLIB_5.has("left_eye") and not DLIB_5.has("mouth_center")
    with pytest.raises(KeyError, match="dlib-5 landmarks have no 'mouth_center'"):
        DLIB_5.point(DLIB, "mouth_center")


def test_faces_keep_their_layout_and_check_its_size():
    faces = Faces(BOX * 2, [0.9, 0.8], np.concatenate([DLIB, DLIB]), layout=DLIB_5)
    assert faces[1].layout is DLIB_5 and faces[np.array([True, False])].keypoints.shape == (1, 5, 2)
    assert concat_faces([faces, Faces.empty(), faces[0]]).layout is DLIB_5  # an empty look adds nothing
    assert Faces.empty(DLIB_5).keypoints.shape == (0, 5, 2)
    assert Faces(BOX, [0.9], MP).layout is MEDIAPIPE_FACE  # the default
    with pytest.raises(ValueError, match="different landmark layouts"):
        concat_faces([faces, Faces(BOX, [0.9], MP)])
    with pytest.raises(ValueError):
        Faces(BOX, [0.9], MP, layout=DLIB_5)  # six points are not dlib's five


def test_pose_reads_the_same_face_alike_in_either_layout():
    mp = face_quality(Faces(BOX, [0.9], MP))
    dlib = face_quality(Faces(BOX, [0.9], DLIB, layout=DLIB_5))
    np.testing.assert_allclose(dlib, mp, rtol=1e-6)
    turned = DLIB.copy()
    turned[0, 4, 0] += 15  # the nose moves sideways: the head turns
    assert face_quality(Faces(BOX, [0.9], turned, layout=DLIB_5))[0] < dlib[0]


def test_alignment_fits_the_points_a_layout_has(default_model):
    aligner = FaceAligner.for_model(default_model.manifest)
    template = default_model.manifest.alignment.points
    matrix = aligner.matrices(Faces(BOX, [0.9], DLIB, layout=DLIB_5))[0]
    eyes = DLIB_5.points(DLIB[0], ["right_eye", "left_eye"]) @ matrix[:, :2].T + matrix[:, 2]
    # dlib has no nose tip or mouth centre: the two eyes alone fix the warp, exactly
    np.testing.assert_allclose(eyes, [template["left_eye"], template["right_eye"]], atol=1e-6)
    mp = aligner.matrices(Faces(BOX, [0.9], MP))
    assert mp.shape == (1, 2, 3) and not np.allclose(mp[0], matrix)  # nose and mouth count there
