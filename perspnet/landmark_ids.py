"""Named vertex indices of MediaPipe's 468-vertex face mesh (also the Face Landmarker's landmark ids).

"Right"/"left" are the subject's: the right eye appears on the image's left in a frontal view.
"""
from __future__ import annotations

RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263
NOSE_TIP = 1
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
UPPER_LIP = 13
LOWER_LIP = 14
CHIN = 152
FOREHEAD = 10

# Face outline, a closed loop going clockwise in a frontal image, starting at the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)

# The eye corners that define the eye centres (FaceModel.eye_centres): right eye outer, inner; left inner, outer.
EYE_CORNERS = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER)

# A sparse set for reports and 2D keypoint losses: eye corners, nose tip, mouth corners, chin.
KEYPOINTS_7 = (*EYE_CORNERS, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT)
