"""studies/demo_figure.py: captions wrap inside their column instead of being cut."""
import cv2

from studies.demo_figure import wrap_caption


def _width(text: str) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.36, 1)[0][0]


def test_a_long_caption_wraps_into_lines_that_fit_and_keep_every_word():
    text = "photo (skimage astronaut, public domain)"
    lines = wrap_caption(text, 184, _width)
    assert len(lines) == 2
    assert all(_width(line) <= 184 for line in lines)
    assert " ".join(lines) == text


def test_a_short_caption_stays_one_line_and_a_word_wider_than_the_column_is_cut():
    assert wrap_caption("HED VGG16", 184, _width) == ["HED VGG16"]
    lines = wrap_caption("x" * 200, 60, _width)
    assert len(lines) == 1 and _width(lines[0]) <= 60 and set(lines[0]) == {"x"}
    assert wrap_caption("", 60, _width) == [""]
