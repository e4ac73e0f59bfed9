"""lgrn.drawing: dots and boxes land on the pixels named by (x, y)."""
import numpy as np

from lgrn.drawing import GREEN, RED, draw_box, draw_points


def test_points_are_drawn_at_x_then_y():
    canvas = np.zeros((20, 40, 3), np.uint8)
    out = draw_points(canvas, [(30.2, 4.8)], radius=1, color=RED)
    assert out is canvas
    assert canvas[5, 30].tolist() == [0, 0, 255]          # row y = 5, column x = 30
    assert canvas[30 % 20, 5].tolist() == [0, 0, 0]       # not transposed
    assert canvas[:, :20].sum() == 0                      # nothing far from the point


def test_ring_and_box_outline():
    canvas = np.zeros((40, 40, 3), np.uint8)
    draw_points(canvas, [(20, 20)], radius=6, color=GREEN, thickness=1)
    assert canvas[20, 20].tolist() == [0, 0, 0] and canvas[20, 26, 1] > 0   # hollow ring of radius 6
    box = np.zeros((40, 40, 3), np.uint8)
    draw_box(box, (5, 10, 30, 35), GREEN, 1)
    assert box[10, 5:31, 1].min() == 255 and box[35, 5:31, 1].min() == 255  # top and bottom edges
    assert box[11:35, 6:30].sum() == 0                                        # empty inside
