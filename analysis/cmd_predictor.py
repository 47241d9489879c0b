"""``servelab predictor train|eval``: train or evaluate the learned runtime predictor
(:mod:`servelab.analysis.predictor`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from servelab.analysis.predictor import (
    evaluate,
    mape_floor,
    prediction_cost_us,
    prepare,
    read_traces,
    split,
    synthetic_traces,
    train,
)
from servelab.core.learned import load, save
from servelab.reproduce import command_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("train", "eval"), help="train a predictor or evaluate one")
    parser.add_argument("--traces", nargs="+", help="Parquet trace files or folders of them")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="use N synthetic requests from a known cost function instead")
    parser.add_argument("--model-file", default="results/predictor.joblib",
                        help="where train writes / eval reads the predictor")
    parser.add_argument("--test-fraction", type=float, default=0.25,
                        help="held-out share when training")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.synthetic:
        df = synthetic_traces(args.synthetic, args.seed)
    elif args.traces:
        df = read_traces(args.traces)
    else:
        raise ValueError("give --traces PATH... or --synthetic N")
    path = Path(args.model_file)
    if args.action == "train":
        fit_df, test_df = split(prepare(df), args.test_fraction, args.seed)
        t = time.perf_counter()
        predictor = train(fit_df, seed=args.seed)
        print(f"trained on {len(fit_df)} requests in {time.perf_counter() - t:.1f}s -> {path}")
        save(predictor, path)
    else:
        predictor = load(path)
        test_df = prepare(df)
    scores = evaluate(predictor, test_df)
    floor = mape_floor(test_df)
    print(f"held-out MAPE over {len(test_df)} requests (target < 10%); floor = the best "
          "constant per (model, size, batch) fitted on these requests themselves:")
    for k, v in scores.items():
        print(f"  {k:<16} {v:6.2f}%   floor {floor.get(k, float('nan')):6.2f}%")
    cold = prediction_cost_us(predictor, test_df)
    warm = prediction_cost_us(predictor, test_df, warm=True)
    print(f"prediction cost: {cold:.1f} us/request amortised building tables on demand, "
          f"{warm:.1f} us with the tables built at start-up as servers do (target <= 50)")
    print(f"reproduce: {command_line('predictor', add_arguments, args)}")
    return 0
