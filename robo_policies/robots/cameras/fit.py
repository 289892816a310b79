"""Camera frames at the size a policy was trained on.

A USB camera delivers 640x480 while an image policy reads, say, 84x84 (its training cameras'
size). ``fit_image`` centre-crops the frame to the policy's aspect ratio (so nothing is
stretched) and then shrinks it with area averaging (OpenCV's INTER_AREA, which does not alias
the way nearest-pixel sampling does).
"""

from __future__ import annotations

import numpy as np

from robo_policies.robots.cameras.opencv import import_cv2


def fit_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, 3) as ``size`` = (height, width): centre crop to that aspect, then resize."""
    height, width = image.shape[:2]
    target_h, target_w = size
    if (height, width) == (target_h, target_w):
        return image
    if height * target_w > width * target_h:  # taller than the target's aspect: crop rows
        crop = round(width * target_h / target_w)
        top = (height - crop) // 2
        image = image[top:top + crop]
    else:
        crop = round(height * target_w / target_h)
        left = (width - crop) // 2
        image = image[:, left:left + crop]
    cv2 = import_cv2()
    return cv2.resize(np.ascontiguousarray(image), (target_w, target_h), interpolation=cv2.INTER_AREA)
