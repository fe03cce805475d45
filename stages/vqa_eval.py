"""`python -m stages.vqa_eval --questions Q.json --annotations A.json --results R.json`: score an
EvalAI-format results file ([{"question_id", "answer"}]) against official-format VQA question and
annotation files exactly as the VQA authors' evaluation script does (stages/evaluation/vqa_official.py),
and print one JSON object: overall, perAnswerType and perQuestionType in percent, 2 decimals.
Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from stages.common.cli import EXPECTED, setup_logging
from stages.evaluation.vqa_files import evaluate_files

log = logging.getLogger("stages.vqa_eval")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.vqa_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, required=True, help="official questions file (JSON)")
    parser.add_argument("--annotations", type=Path, required=True, help="official annotations file (JSON)")
    parser.add_argument("--results", type=Path, required=True, help='results: [{"question_id", "answer"}] (JSON)')
    args = parser.parse_args(argv)
    setup_logging()
    try:
        report = evaluate_files(args.questions, args.annotations, args.results)
    except EXPECTED as e:
        log.error("vqa_eval failed: %s", e)
        sys.exit(2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
