"""easy_vqa question kinds: colour and shape questions are told apart from each other and from yes/no."""
import pytest

from storage.adapters.easy_vqa import question_kind


@pytest.mark.parametrize(("question", "answer", "kind"), [
    ("what color is the shape?", "teal", "color"),
    ("what is the color of the circle?", "red", "color"),
    ("what is the blue shape?", "rectangle", "shape"),
    ("what shape is present?", "circle", "shape"),
    ("is there a black shape?", "no", "yes/no color"),
    ("does the image not contain a gray shape?", "yes", "yes/no color"),
    ("does the image contain a rectangle?", "yes", "yes/no shape"),
    ("is there a red triangle?", "no", "yes/no color/shape"),
    ("is there anything?", "yes", "yes/no"),
    ("how many?", "2", "other"),
])
def test_question_kind(question, answer, kind):
    assert question_kind(question, answer) == kind
