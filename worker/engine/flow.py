"""Optical flow between video frames, warping by it, and where it can be trusted (OpenCV, NumPy).

A flow here is an H x W x 2 float32 array of (dx, dy) per pixel of the frame it starts from: for
``flow = estimate(a, b)``, ``a[y, x]`` shows what ``b[y + dy, x + dx]`` shows. So the previous
stylised frame is brought onto frame t by ``warp(previous, estimate(frame_t, frame_t_minus_1))``.

The flow is OpenCV's DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", 2016): a
CPU method of a few milliseconds per small frame, dense, and good enough for a loss that is masked
where it fails (docs/video.md has the choice). The consistency mask is Sundaram, Brox and Keutzer's
forward-backward check as Ruder, Dosovitskiy and Brox use it ("Artistic style transfer for videos",
2016, eq. 4-5; manuelruder/artistic-videos' consistencyChecker): 0 at disocclusions (the two flows
disagree), at motion boundaries (the backward flow's gradient is large) and where the flow leaves
the frame, 1 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# DIS's "medium" preset: on 64-256 px frames about as fast as "fast" and visibly less noisy.
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def estimate(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The dense flow from ``start`` to ``end`` (uint8 H x W x 3 RGB frames of one size), H x W x 2."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)  # one per call: DIS objects are not thread-safe
    flow = dis.calc(_grey(start), _grey(end), None)
    return flow.astype(np.float32)


def _coordinates(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at each pixel plus its ``flow`` (bilinear; the border repeated outside)."""
    map_x, map_y = _coordinates(flow)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the flow into frame t can be trusted: an H x W float32 mask of 0s and 1s.

    ``backward`` is the flow from frame t to frame t-1, ``forward`` from t-1 to t. A pixel of frame t
    is consistent when following ``backward`` and then ``forward`` comes back to it, up to
    |w~ + w^|^2 <= 0.01 (|w~|^2 + |w^|^2) + 0.5 (w^ the backward flow, w~ the forward flow at the
    point it leads to); it is a motion boundary when |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002.
    """
    height, width = backward.shape[:2]
    map_x, map_y = _coordinates(backward)
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.sum(np.square(forward_there + backward), axis=2)
    magnitudes = np.sum(np.square(forward_there), axis=2) + np.sum(np.square(backward), axis=2)
    occluded = round_trip > 0.01 * magnitudes + 0.5
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    gradient = du_x**2 + du_y**2 + dv_x**2 + dv_y**2
    boundary = gradient > 0.01 * np.sum(np.square(backward), axis=2) + 0.002
    outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)


@dataclass(frozen=True)
class FrameFlow:
    """What frame t needs of the frame before it: the flow back to it and where that flow holds."""

    backward: np.ndarray  # H x W x 2, frame t -> frame t-1
    mask: np.ndarray  # H x W float32, 1 where consistent

    @classmethod
    def between(cls, previous: np.ndarray, current: np.ndarray) -> FrameFlow:
        """The flow of ``current`` (frame t) back to ``previous`` (frame t-1), both uint8 RGB."""
        backward = estimate(current, previous)
        forward = estimate(previous, current)
        return cls(backward=backward, mask=consistency(backward, forward))

    def bring_forward(self, image: np.ndarray) -> np.ndarray:
        """Frame t-1's ``image`` (any dtype, H x W x C) moved onto frame t."""
        return warp(image, self.backward)


def warping_error(outputs: list[np.ndarray], flows: list[FrameFlow]) -> float:
    """The mean squared difference (pixels in [0, 1]) between each output frame and the one before it
    brought onto it by ``flows[t-1]``, over the consistent pixels: how much a clip flickers."""
    errors = []
    for previous, current, flow in zip(outputs, outputs[1:], flows, strict=False):
        warped = flow.bring_forward(previous.astype(np.float32) / 255.0)
        difference = np.square(current.astype(np.float32) / 255.0 - warped).mean(axis=2)
        weight = flow.mask.sum()
        if weight > 0:
            errors.append(float((difference * flow.mask).sum() / weight))
    return float(np.mean(errors)) if errors else 0.0
