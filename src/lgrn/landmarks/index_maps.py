"""Index maps between the built-in landmark layouts: which of the 98 WFLW landmarks stands for each
landmark of the 68-point 300W and the 29-point COFW layouts (used by the synthetic faces, whose ground
truth is drawn in the 98-point layout; docs/synthetic.md, "Other landmark layouts").

``INDEX_MAPS[scheme][i]`` is the WFLW-98 index of landmark ``i`` of ``scheme``; the maps commute with the
schemes' flip permutations.
"""
from __future__ import annotations

# WFLW 98 -> 300W 68: every other contour point, the upper brow points, bridge and lower nose, six points
# per eye (corners, two upper, two lower lid points), the 20 mouth points.
WFLW98_TO_300W68: tuple[int, ...] = (
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32,      # jaw 0-16
    33, 34, 35, 36, 37, 42, 43, 44, 45, 46,                              # brows 17-26
    51, 52, 53, 54, 55, 56, 57, 58, 59,                                  # nose 27-35
    60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75,                      # eyes 36-47
    76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,                      # outer mouth 48-59
    88, 89, 90, 91, 92, 93, 94, 95)                                      # inner mouth 60-67
# WFLW 98 -> COFW 29 (order as in the COFW graph: brow outer/inner/top/bottom corners, eye outer/inner/
# top/bottom, pupils, nose wings, tip, subnasale, mouth corners, lip top/inner/inner/bottom, chin).
WFLW98_TO_COFW29: tuple[int, ...] = (
    33, 46, 37, 42, 35, 40, 44, 48,          # brows: outer L/R, inner L/R, top L, bottom L, top R, bottom R
    60, 72, 64, 68, 62, 66, 70, 74,          # eyes: outer L/R, inner L/R, top L, bottom L, top R, bottom R
    96, 97,                                  # pupils
    55, 59, 54, 57,                          # nose wings L/R, tip, subnasale
    76, 82, 79, 90, 94, 85,                  # mouth corners L/R, upper lip top, inner upper, inner lower, lower
    16)                                      # chin
# Built-in scheme name -> its map from the 98 WFLW landmarks (the identity for wflw98 itself).
INDEX_MAPS: dict[str, tuple[int, ...]] = {
    "wflw98": tuple(range(98)), "300w68": WFLW98_TO_300W68, "cofw29": WFLW98_TO_COFW29}
