"""A tuning worker process: ``python -m stairways.tuning.worker --recipe FILE --worker N`` (see run_study)."""

import argparse
import logging
import sys
from pathlib import Path

from stairways.tuning.study import StudyRecipe, run_worker

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run trials of the recipe's study until it has its trials (exit 0), as worker ``--worker``."""
    parser = argparse.ArgumentParser(prog="python -m stairways.tuning.worker")
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--worker", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s tuning worker {args.worker}: %(message)s")
    run_worker(StudyRecipe.from_json(args.recipe.read_text()), worker=args.worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
