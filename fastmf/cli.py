"""The ``fastmf`` command line: demo, fit, evaluate, recommend, similar, tune, plot.

Results go to stdout (a table, or JSON with ``--json``); progress, logs and errors go to
stderr. A user mistake (missing file, bad format, unknown id, bad option) ends with a one-line
``fastmf: error: ...`` and exit status 1 -- no traceback; usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastmf
from fastmf.io import FORMATS, read_ratings
from fastmf.persist import ModelFileError

log = logging.getLogger("fastmf")


# -- helpers -----------------------------------------------------------------------------------


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(payload, default=_json_default))
    else:
        print(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _list_of(cast: type, what: str):
    """An argparse type for comma-separated values, e.g. ``--reg 0.05,0.1``."""

    def parse(text: str) -> list:
        try:
            return [cast(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


def _parse_id(text: str, ids: np.ndarray, kind: str) -> Any:
    """A command-line id in the type of the model's ids (``42`` matches integer id 42)."""
    try:
        if ids.dtype.kind in "iu":
            return int(text)
        if ids.dtype.kind == "f":
            return float(text)
    except ValueError:
        raise KeyError(f"unknown {kind} id {text!r}") from None
    return text


def _read(args: argparse.Namespace, path: str) -> fastmf.Ratings:
    """Read DATA; ``-`` means standard input (e.g. ``zcat ratings.csv.gz | fastmf fit -``)."""
    if path == "-":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            name = Path(tmp) / "stdin.txt"
            name.write_bytes(sys.stdin.buffer.read())
            return _read(args, str(name))
    columns = None
    if args.user_col or args.item_col or args.rating_col:
        columns = tuple(_col(c, d) for c, d in ((args.user_col, 0), (args.item_col, 1),
                                                 (args.rating_col, 2)))
    header = {"yes": True, "no": False, "auto": None}[args.header]
    return read_ratings(path, format=args.format, sep=args.sep, header=header, columns=columns,
                        duplicates=args.duplicates)


def _col(value: str | None, default: int) -> Any:
    if value is None:
        return default
    return int(value) if value.isdigit() else value


def _titles(path: str | None) -> dict[Any, str]:
    if not path:
        return {}
    from fastmf.datasets import load_movielens_titles

    return load_movielens_titles(path)


def _label(item: Any, titles: dict[Any, str]) -> str:
    key = item.item() if isinstance(item, np.generic) else item
    return f"{key} {titles[key]}" if key in titles else str(key)


def _rmse_on(model: Any, r: fastmf.Ratings) -> float:
    pred = model.predict(r.user_ids[r.user_index], r.item_ids[r.item_index])
    return float(np.sqrt(np.mean((pred.astype(np.float64) - r.values) ** 2)))


def _progress(args: argparse.Namespace, total: int, train: fastmf.Ratings,
              validation: fastmf.Ratings | None):
    """A tqdm bar on stderr (iteration, loss, RMSE, elapsed), as a fit callback."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="fit", unit="it", disable=args.quiet, file=sys.stderr,
               leave=True, dynamic_ncols=True)

    def callback(it: int, model: Any) -> None:
        if isinstance(model, fastmf.BayesianALS):  # not fitted until the last sweep
            post = {"rmse": f"{model.rmse_curve_[-1]:.4f}",
                    "sigma": f"{model.noise_precision_curve_[-1] ** -0.5:.4f}"}
        else:
            post = {"loss": f"{model.loss_curve_[-1]:.5g}",
                    "rmse": f"{_rmse_on(model, train):.4f}"}
        if model.validation_curve_ is not None and len(model.validation_curve_):
            post["val_rmse"] = f"{model.validation_curve_[-1]:.4f}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    return bar, callback


# -- commands ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from fastmf.baseline import BiasOnly
    from fastmf.model_selection import train_test_split

    t0 = time.perf_counter()
    titles: dict[Any, str] = {}
    if args.movielens:
        path = Path(args.movielens)
        ratings = fastmf.load_movielens(args.variant, path)
        source = f"MovieLens {args.variant} from {path}"
        try:
            titles = _titles(str(path if path.is_dir() else path.parent))
        except FileNotFoundError:
            titles = {}
    else:
        ratings, _ = fastmf.make_ratings(
            2000, 1000, 100_000, n_factors=5, noise=0.5, factor_scale=0.9, rating_scale=(1, 5),
            min_user_ratings=10, random_state=args.seed,
        )
        source = "synthetic planted-model ratings (make_ratings, rank 5, noise 0.5)"
    train, test = train_test_split(ratings, 0.1, random_state=args.seed)
    model = fastmf.BiasedALS(args.factors, n_iter=args.iters, random_state=args.seed)
    bar, callback = _progress(args, args.iters, train, None)
    with bar:
        model.fit(train, callback=callback)
    bayes = fastmf.BayesianALS(args.factors, random_state=args.seed)
    bar, callback = _progress(args, bayes.burn_in + bayes.n_samples * bayes.thin, train,
                              None)
    with bar:
        bayes.fit(train, callback=callback)
    base = BiasOnly().fit(train)
    rmse = {
        "train": _rmse_on(model, train), "test": _rmse_on(model, test),
        "bayesian_train": _rmse_on(bayes, train), "bayesian_test": _rmse_on(bayes, test),
        "baseline_train": _rmse_on(base, train), "baseline_test": _rmse_on(base, test),
    }
    user = train.user_ids[np.argmax(np.bincount(train.user_index))]
    rec_items, rec_scores = model.recommend(user, n=5)
    item = train.item_ids[np.argmax(np.bincount(train.item_index))]
    sim_items, sims = model.similar_items(item, n=5)
    elapsed = time.perf_counter() - t0
    payload = {
        "data": source, "ratings": ratings.nnz, "users": ratings.n_users,
        "items": ratings.n_items, "n_factors": args.factors, "iterations": model.n_iter_,
        "rmse": rmse, "user": user, "recommendations": list(zip(rec_items, rec_scores)),
        "item": item, "similar_items": list(zip(sim_items, sims)), "seconds": elapsed,
    }
    lines = [
        f"data:      {source}",
        f"           {ratings.nnz:,} ratings, {ratings.n_users:,} users, "
        f"{ratings.n_items:,} items; 90/10 random split",
        f"models:    BiasedALS(n_factors={args.factors}), {model.n_iter_} ALS iterations;",
        f"           BayesianALS(n_factors={args.factors}), {bayes.burn_in} burn-in + "
        f"{bayes.n_samples_} Gibbs sweeps",
        "",
        "RMSE              train    test",
        f"BiasedALS        {rmse['train']:.4f}  {rmse['test']:.4f}",
        f"BayesianALS      {rmse['bayesian_train']:.4f}  {rmse['bayesian_test']:.4f}",
        f"biases only      {rmse['baseline_train']:.4f}  {rmse['baseline_test']:.4f}",
        "",
        f"top 5 for user {user} (most active):",
        *[f"  {k + 1}. {_label(i, titles)}  ({s:.2f})"
          for k, (i, s) in enumerate(zip(rec_items, rec_scores))],
        f"items most similar to item {_label(item, titles)} (most rated):",
        *[f"  {k + 1}. {_label(i, titles)}  (cosine {s:.2f})"
          for k, (i, s) in enumerate(zip(sim_items, sims))],
        "",
        f"done in {elapsed:.1f} s",
    ]
    _emit(args, payload, "\n".join(lines))
    return 0


# Options of one estimator only: option dest -> constructor parameter. Their parser defaults
# are None, so the estimator's own defaults apply and an option given to the other estimator
# is refused instead of silently ignored.
_ALS_ONLY = {"iters": "n_iter", "solver": "solver", "reg": "reg", "reg_bias": "reg_bias",
             "reg_scaling": "reg_scaling", "bias_update": "bias_update",
             "cg_steps": "cg_steps", "early_stopping": None}
_BAYES_ONLY = {"bayes_samples": "n_samples", "burn_in": "burn_in", "thin": "thin"}


def _estimator_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor parameters given on the command line for the chosen estimator."""
    mine, other = (_BAYES_ONLY, _ALS_ONLY) if args.bayesian else (_ALS_ONLY, _BAYES_ONLY)
    wrong = [dest for dest in other if getattr(args, dest, None) is not None]
    if wrong:
        names = ", ".join("--" + ("samples" if d == "bayes_samples" else d.replace("_", "-"))
                          for d in wrong)
        raise ValueError(f"{names}: only with{'out' if args.bayesian else ''} --bayesian")
    return {param: getattr(args, dest) for dest, param in mine.items()
            if param is not None and getattr(args, dest, None) is not None}


def cmd_fit(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    options = _estimator_options(args)
    train = _read(args, args.data)
    validation = _read(args, args.validation) if args.validation else None
    common = dict(dtype=args.dtype, random_state=args.seed, n_jobs=args.jobs)
    if args.bayesian:
        model = fastmf.BayesianALS(args.factors, **options, **common)
        total, fit_options = model.burn_in + model.n_samples * model.thin, {}
    else:
        model = fastmf.BiasedALS(args.factors, **options, **common)
        total, fit_options = model.n_iter, {"early_stopping_rounds": args.early_stopping}
    bar, callback = _progress(args, total, train, validation)
    with bar:
        model.fit(train, validation=validation, callback=callback, **fit_options)
    path = model.save(args.output)
    payload = {
        "model": str(path), "estimator": type(model).__name__, "ratings": train.nnz,
        "users": train.n_users, "items": train.n_items, "iterations": model.n_iter_,
        "train_rmse": _rmse_on(model, train), "seconds": time.perf_counter() - t0,
    }
    if args.bayesian:
        payload["samples"] = model.n_samples_
    else:
        payload["loss"] = float(model.loss_curve_[-1])
    if validation is not None:
        payload["validation_rmse"] = _rmse_on(model, validation)
    steps = (f"{model.n_iter_} sweeps ({model.burn_in} burn-in, {model.n_samples_} samples)"
             if args.bayesian else f"{model.n_iter_} iterations")
    text = (f"fitted {train.nnz:,} ratings ({train.n_users:,} users x {train.n_items:,} items), "
            f"{steps}, train RMSE {payload['train_rmse']:.4f}"
            + (f", validation RMSE {payload['validation_rmse']:.4f}" if validation else "")
            + f"\nsaved {path}")
    _emit(args, payload, text)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fastmf.metrics import mae, ranking_report, rmse

    model = fastmf.load(args.model)
    test = _read(args, args.data)
    pred = model.predict(test.user_ids[test.user_index], test.item_ids[test.item_index],
                         unseen=args.unseen)
    keep = np.isfinite(pred)
    payload: dict[str, Any] = {
        "ratings": test.nnz, "rmse": rmse(test.values[keep], pred[keep]),
        "mae": mae(test.values[keep], pred[keep]),
    }
    if args.k:
        payload.update(ranking_report(model, test, k=args.k, threshold=args.threshold))
    _emit(args, payload, "\n".join(f"{k:14s} {v:.4f}" if isinstance(v, float) else
                                   f"{k:14s} {v}" for k, v in payload.items()))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    model = fastmf.load(args.model)
    user = _parse_id(args.user, model.user_ids_, "user")
    items, scores = model.recommend(user, n=args.n, exclude_rated=not args.include_rated,
                                    unseen="bias" if args.allow_unknown else "raise")
    titles = _titles(args.titles)
    payload = {"user": user, "items": [{"item": i, "score": s, **({"title": titles[i.item()]}
               if i.item() in titles else {})} for i, s in zip(items, scores)]}
    _emit(args, payload, "\n".join(f"{k + 1}\t{_label(i, titles)}\t{s:.4f}"
                                   for k, (i, s) in enumerate(zip(items, scores))))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    model = fastmf.load(args.model)
    titles = _titles(args.titles)
    if args.item is not None:
        key = _parse_id(args.item, model.item_ids_, "item")
        ids, sims = model.similar_items(key, n=args.n)
    else:
        key = _parse_id(args.user, model.user_ids_, "user")
        ids, sims = model.similar_users(key, n=args.n)
        titles = {}
    payload = {"query": key, "similar": [{"id": i, "cosine": s} for i, s in zip(ids, sims)]}
    _emit(args, payload, "\n".join(f"{k + 1}\t{_label(i, titles)}\t{s:.4f}"
                                   for k, (i, s) in enumerate(zip(ids, sims))))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from fastmf.model_selection import search

    regs = args.reg
    args.reg = None  # a list here, the grid's; checked below like the other options
    options = _estimator_options(args)
    ratings = _read(args, args.data)
    if args.bayesian:
        if regs is not None:
            raise ValueError("--reg: only without --bayesian (its priors learn the "
                             "regularization; tune --factors alone)")
        template = fastmf.BayesianALS(random_state=args.seed, n_jobs=args.jobs)
        grid = {"n_factors": args.factors}
    else:
        template = fastmf.BiasedALS(**options, random_state=args.seed, n_jobs=args.jobs)
        grid = {"n_factors": args.factors, "reg": regs or [0.05, 0.1, 0.15]}
    result = search(template, ratings, grid,
                    cv=args.folds, n_samples=args.samples, random_state=args.seed,
                    refit=bool(args.output))
    table = result.results.sort_values("rank")
    payload = {"best_params": result.best_params, "best_rmse": result.best_score,
               "results": table.to_dict(orient="records")}
    text = table.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    text += f"\nbest: {result.best_params} (mean CV RMSE {result.best_score:.4f})"
    if args.output:
        path = result.best_estimator.save(args.output)
        payload["model"] = str(path)
        text += f"\nsaved {path}"
    _emit(args, payload, text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from fastmf.plot import plot_model

    model = fastmf.load(args.model)
    out = plot_model(model, args.output, titles=_titles(args.titles), n_labels=args.labels)
    _emit(args, {"plot": str(out)}, f"wrote {out}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastmf",
        description="Biased matrix factorization by alternating least squares.",
        epilog="Run 'fastmf COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"fastmf {fastmf.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or logs")
    common.add_argument("-v", "--verbose", action="store_true", help="log each iteration")

    data = argparse.ArgumentParser(add_help=False)
    g = data.add_argument_group("input file")
    g.add_argument("--format", choices=FORMATS, default="auto",
                   help="file format (default: from the name and first line)")
    g.add_argument("--sep", help="field separator of a text file (default: sniffed)")
    g.add_argument("--header", choices=("auto", "yes", "no"), default="auto",
                   help="does the first line name the columns (default: auto)")
    g.add_argument("--user-col", help="user column: name or 0-based position")
    g.add_argument("--item-col", help="item column: name or 0-based position")
    g.add_argument("--rating-col", help="rating column: name or 0-based position")
    g.add_argument("--duplicates", choices=("raise", "mean", "last"), default="raise",
                   help="repeated (user, item) pairs (default: raise an error)")

    hyper = argparse.ArgumentParser(add_help=False)
    h = hyper.add_argument_group("model")
    h.add_argument("--iters", type=int, help="ALS iterations (default 15)")
    h.add_argument("--solver", choices=("cholesky", "cg"), help="ALS solver (default cholesky)")
    h.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    h.add_argument("--jobs", type=int, default=None, help="threads (default: all)")

    s = sub.add_parser("demo", parents=[common], help="fit on built-in data and show results",
                       description="Fit on generated planted-model data (or MovieLens with "
                                   "--movielens) and show RMSE, recommendations and "
                                   "similar items. Needs no files.")
    s.add_argument("--movielens", metavar="PATH", help="use MovieLens data at PATH instead")
    s.add_argument("--variant", default="100k", help="MovieLens variant (default 100k)")
    s.add_argument("--factors", type=int, default=16, help="rank K (default 16)")
    s.add_argument("--iters", type=int, default=10, help="ALS iterations (default 10)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("fit", parents=[common, data, hyper], help="fit a model to a file",
                       description="Fit BiasedALS (or, with --bayesian, BayesianALS) to the "
                                   "ratings in DATA and save it.")
    s.add_argument("data", metavar="DATA",
                   help="ratings file (CSV, TSV, Parquet, MovieLens); - for standard input")
    s.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file (.npz)")
    s.add_argument("--factors", type=int, default=32, help="rank K (default 32)")
    s.add_argument("--reg", type=float, help="lambda (default 0.1)")
    s.add_argument("--reg-bias", type=float, help="lambda_b (default: --reg)")
    s.add_argument("--reg-scaling", choices=("count", "none"), help="(default count)")
    s.add_argument("--bias-update", choices=("joint", "sequential"), help="(default joint)")
    s.add_argument("--cg-steps", type=int, help="CG steps per row (default 3)")
    s.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    s.add_argument("--validation", metavar="FILE", help="held-out ratings to monitor")
    s.add_argument("--early-stopping", type=int, metavar="N",
                   help="with --validation: stop after N iterations without improvement")
    s.add_argument("--bayesian", action="store_true",
                   help="Gibbs-sample BayesianALS instead (no --reg to tune; --iters, --reg*, "
                        "--bias-update, --solver, --cg-steps, --early-stopping do not apply)")
    s.add_argument("--samples", type=int, dest="bayes_samples", metavar="N",
                   help="with --bayesian: samples averaged for prediction (default 100)")
    s.add_argument("--burn-in", type=int, metavar="N",
                   help="with --bayesian: sweeps discarded first (default 20)")
    s.add_argument("--thin", type=int, metavar="N",
                   help="with --bayesian: keep every N-th sweep after burn-in (default 1)")
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("evaluate", parents=[common, data], help="score a model on a file",
                       description="RMSE and MAE (and ranking metrics with -k) on DATA.")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("data", metavar="DATA")
    s.add_argument("-k", type=int, default=0, help="also precision/recall/NDCG/MAP at k")
    s.add_argument("--threshold", type=float, help="relevant = held-out rating >= this")
    s.add_argument("--unseen", choices=("bias", "nan"), default="bias",
                   help="unknown ids: predict mu + known bias, or skip them (nan)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("recommend", parents=[common], help="top-N items for a user")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("--user", required=True, help="user id")
    s.add_argument("-n", type=int, default=10, help="how many (default 10)")
    s.add_argument("--include-rated", action="store_true", help="also items the user rated")
    s.add_argument("--allow-unknown", action="store_true",
                   help="for an unknown user, rank by item bias instead of failing")
    s.add_argument("--titles", metavar="PATH", help="MovieLens folder or movie list for titles")
    s.set_defaults(func=cmd_recommend)

    s = sub.add_parser("similar", parents=[common], help="most similar items (or users)")
    s.add_argument("model", metavar="MODEL")
    who = s.add_mutually_exclusive_group(required=True)
    who.add_argument("--item", help="item id")
    who.add_argument("--user", help="user id")
    s.add_argument("-n", type=int, default=10, help="how many (default 10)")
    s.add_argument("--titles", metavar="PATH", help="MovieLens folder or movie list for titles")
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("tune", parents=[common, data, hyper],
                       help="choose n_factors and reg by cross-validation",
                       description="Cross-validate BiasedALS over --factors x --reg (with "
                                   "--bayesian: BayesianALS over --factors) and report the "
                                   "best.")
    s.add_argument("data", metavar="DATA")
    s.add_argument("--factors", type=_list_of(int, "integers"), default=[16, 32, 64],
                   help="e.g. 16,32,64")
    s.add_argument("--reg", type=_list_of(float, "numbers"),
                   help="e.g. 0.05,0.1 (default 0.05,0.1,0.15)")
    s.add_argument("--folds", type=int, default=3)
    s.add_argument("--bayesian", action="store_true",
                   help="tune BayesianALS (default samples and burn-in) over --factors")
    s.add_argument("--samples", type=int, help="random search: try this many combinations")
    s.add_argument("-o", "--output", metavar="MODEL", help="refit the best on DATA, save here")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("plot", parents=[common], help="loss curve and a 2-D map of the items",
                       description="Write a PNG: loss (and validation RMSE) per iteration, and "
                                   "the item factors projected on their first two principal "
                                   "components, the most-rated items labelled.")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("-o", "--output", required=True, metavar="FILE.png")
    s.add_argument("--titles", metavar="PATH", help="MovieLens folder or movie list for labels")
    s.add_argument("--labels", type=int, default=25, help="how many items to label (25)")
    s.set_defaults(func=cmd_plot)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logging.basicConfig(level=level, format="fastmf: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("fastmf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastmf recommend ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, IsADirectoryError, PermissionError, ModelFileError, ValueError,
            KeyError, TypeError, FloatingPointError, ImportError) as exc:
        if os.environ.get("FASTMF_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fastmf: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
