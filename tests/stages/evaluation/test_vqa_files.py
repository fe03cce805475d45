"""`python -m stages.vqa_eval` on small official-format files written here, scored by hand."""
import json
import subprocess
import sys

import pytest

from stages import vqa_eval
from stages.common.cli import StageError
from stages.evaluation.vqa_files import evaluate_files
from tests.conftest import REPO

# (question_id, question_type, answer_type, human answers, prediction, accuracy worked out by hand)
CASES = [
    (1, "how many", "number", ["two", "two", "2"] + ["3"] * 7, "two", 0.3),   # only the "2" matches: 9/30
    (2, "is the", "yes/no", ["yes"] * 10, "Yes.", 1.0),                     # -> "yes", all 10 agree
    (3, "what color", "other", ["red"] * 3 + ["blue"] * 7, "red", 0.9),      # (3 * 2/3 + 7) / 10
]


def _write(tmp_path, cases=CASES, results=None, answer_ids=True, questions=None):
    anns = [{"question_id": q, "image_id": 7, "question_type": qt, "answer_type": at, "multiple_choice_answer": a[0],
             "answers": [{"answer": x, "answer_confidence": "yes", **({"answer_id": i + 1} if answer_ids else {})}
                         for i, x in enumerate(a)]} for q, qt, at, a, _, _ in cases]
    qs = questions or {"task_type": "Open-Ended", "questions": [{"question_id": c[0], "image_id": 7, "question": "?"}
                                                                for c in cases]}
    res = results if results is not None else [{"question_id": c[0], "answer": c[4]} for c in cases]
    paths = {}
    for name, obj in (("questions", qs), ("annotations", {"annotations": anns}), ("results", res)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return paths


def _subprocess(paths):
    cmd = [sys.executable, "-m", "stages.vqa_eval"] + [f"--{k}={v}" for k, v in paths.items()]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_prints_the_official_figures(tmp_path, capsys):
    vqa_eval.main([f"--{k}={v}" for k, v in _write(tmp_path).items()])
    assert json.loads(capsys.readouterr().out) == {"overall": 73.33,          # 100 * (0.3 + 1 + 0.9) / 3
                                      "perAnswerType": {"number": 30.0, "yes/no": 100.0, "other": 90.0},
                                      "perQuestionType": {"how many": 30.0, "is the": 100.0, "what color": 90.0}}


def test_cli_malformed_results_exit_2_with_one_line(tmp_path):
    out = _subprocess(_write(tmp_path, results='[{"question_id": 1, "answer": "two"},'))
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "results file" in lines[0] and "is not JSON" in lines[0], out.stderr


@pytest.mark.parametrize("results, message", [
    ([{"question_id": 1, "answer": "two"}, {"question_id": 2, "answer": "yes"}, {"question_id": 9, "answer": "x"}],
     r"exactly the 3 annotated questions: 1 missing \(3\), 1 not annotated \(9\)"),
    ([{"question_id": 1, "answer": "two"}, {"question_id": 1, "answer": "2"}, {"question_id": 2, "answer": "yes"},
      {"question_id": 3, "answer": "red"}], r"1 repeated question ids \(1\)"),
    ([{"question_id": 1, "answer": 2}, {"question_id": 2, "answer": "yes"}, {"question_id": 3, "answer": "red"}],
     r"1 entries are not .*positions 0\)"),
    ({"question_id": 1, "answer": "two"}, "must be a JSON array"),
    ([{"question_id": "1", "answer": "two"}, {"question_id": 2, "answer": "yes"}, {"question_id": 3, "answer": "red"}],
     r"1 missing \(1\), 1 not annotated \('1'\)"),   # ids are compared as given, as the script does
])
def test_results_must_cover_exactly_the_annotated_questions(tmp_path, results, message):
    with pytest.raises(StageError, match=message):
        evaluate_files(**_write(tmp_path, results=results))


def test_bad_annotations_and_questions(tmp_path):
    paths = _write(tmp_path)
    anns = json.loads(paths["annotations"].read_text())
    del anns["annotations"][1]["question_type"]
    paths["annotations"].write_text(json.dumps(anns))
    with pytest.raises(StageError, match=r"1 annotations lack .*positions 1\)"):
        evaluate_files(**paths)
    paths = _write(tmp_path, questions={"questions": [{"question_id": 1}, {"question_id": 2}]})
    with pytest.raises(StageError, match=r"lacks 1 annotated questions \(3\)"):
        evaluate_files(**paths)
    paths["questions"].unlink()
    with pytest.raises(StageError, match="questions file .* not found"):
        evaluate_files(**paths)


def test_multiple_choice_answers_must_be_choices(tmp_path):
    qs = {"task_type": "Multiple Choice", "questions": [
        {"question_id": c[0], "multiple_choices": ["2", "yes", "red", "blue"]} for c in CASES]}
    with pytest.raises(StageError, match=r"2 answers are not among .*multiple_choices \(1, 2\)"):
        evaluate_files(**_write(tmp_path, questions=qs))     # neither "two" nor "Yes." is a choice as written
    qs["questions"][1]["multiple_choices"].append("Yes.")
    results = [{"question_id": q, "answer": a} for q, a in ((1, "2"), (2, "Yes."), (3, "red"))]
    assert evaluate_files(**_write(tmp_path, questions=qs, results=results))["overall"] == 73.33


def test_records_without_answer_id_are_left_out_together(tmp_path, caplog):
    # question 2's ten "yes" records are now identical: each leave-one-out removes all ten (0).
    # Question 3: leaving out a "red" removes all 3 (0), leaving out a "blue" keeps them (1): 7/10.
    # Question 1: the one "2" record is still alone: 0.3 as before.
    with caplog.at_level("WARNING"):
        out = evaluate_files(**_write(tmp_path, answer_ids=False))
    assert out["perAnswerType"] == {"number": 30.0, "yes/no": 0.0, "other": 70.0}
    assert "3 questions have identical answer records" in caplog.text
