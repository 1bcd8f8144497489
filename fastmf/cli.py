"""The ``fastmf`` command line: demo, fit, evaluate, recommend, similar, tune, plot.

Results go to stdout (a table, or JSON with ``--json``); progress, logs and errors go to
stderr. A user mistake (missing file, bad format, unknown id, bad option) ends with a one-line
``fastmf: error: ...`` and exit status 1 -- no traceback; usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import fastmf
from fastmf import _registry as registry
from fastmf._version import __version__
from fastmf.io import FORMATS

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
    columns = args.columns
    if args.user_col or args.item_col or args.rating_col:
        columns = tuple(_col(c, d) for c, d in ((args.user_col, 0), (args.item_col, 1),
                                                 (args.rating_col, 2)))
    header = {"yes": True, "no": False, "auto": None}[args.header]
    from fastmf.io import read_ratings

    return read_ratings(path, format=args.format, sep=args.sep, header=header, columns=columns,
                        duplicates=args.duplicates)


def _col(value: str | None, default: int) -> Any:
    if value is None:
        return default
    return int(value) if value.isdigit() else value


def _titles(path: str | None, ids: np.ndarray | None = None) -> dict[Any, str]:
    """Titles by id from a MovieLens folder; with the model's ``ids``, a warning when most of
    them have no title (titles of another data set would label items wrongly)."""
    if not path:
        return {}
    from fastmf.datasets import load_movielens_titles

    titles = load_movielens_titles(path)
    if ids is not None and len(ids):
        known = sum(1 for i in ids if (i.item() if isinstance(i, np.generic) else i) in titles)
        if known < 0.9 * len(ids):
            print(f"fastmf: warning: {path} has titles for only {known:,} of the model's "
                  f"{len(ids):,} items -- titles of another data set? Items without one "
                  "are shown by id", file=sys.stderr)
    return titles


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
        post = model._progress_postfix(train)
        if model.validation_curve_ is not None and len(model.validation_curve_):
            post["val_rmse"] = f"{model.validation_curve_[-1]:.4f}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    return bar, callback


def _compile_notice(args: argparse.Namespace) -> None:
    """Say why the first fit on a machine sits still for a while."""
    from fastmf.kernels._cache import cache_is_warm

    if not args.quiet and not cache_is_warm():
        print("fastmf: compiling kernels (first run only; up to a minute per model)",
              file=sys.stderr)


# -- commands ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from fastmf.baseline import BiasOnly
    from fastmf.model_selection import train_test_split

    t0 = time.perf_counter()
    titles: dict[Any, str] = {}
    if args.movielens:
        from fastmf.datasets import detect_movielens_variant

        path = Path(args.movielens)
        variant = args.variant or detect_movielens_variant(path)
        ratings = fastmf.load_movielens(variant, path)
        source = f"MovieLens {variant} from {path}"
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
    _compile_notice(args)
    model = fastmf.BiasedALS(args.factors, n_iter=args.iters, random_state=args.seed)
    bar, callback = _progress(args, args.iters, train, None)
    with bar:
        model.fit(train, callback=callback)
    bayes = fastmf.BayesianALS(args.factors, random_state=args.seed)
    bar, callback = _progress(args, bayes._planned_iterations(), train, None)
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
        f"top 5 for user {user} (most active; ranked by how likely they are rated and liked, "
        "not by predicted rating alone):",
        *[f"  {k + 1}. {_label(i, titles)}  (predicted {s:.2f})"
          for k, (i, s) in enumerate(zip(rec_items, rec_scores))],
        f"items most similar to item {_label(item, titles)} (most rated):",
        *[f"  {k + 1}. {_label(i, titles)}  (similarity {s:.2f})"
          for k, (i, s) in enumerate(zip(sim_items, sims))],
        "",
        f"done in {elapsed:.1f} s",
    ]
    _emit(args, payload, "\n".join(lines))
    return 0


# Estimator options are read from the registry and each estimator's parameter table: every
# table row with a ``cli`` name is an option, defaulting to None so the estimator's own
# default applies; an option the chosen --model does not take is refused by name instead of
# silently ignored. Options of fit() itself are listed here.
_FIT_OPTIONS = {"early_stopping": "early_stopping_rounds", "checkpoint": "checkpoint",
                "checkpoint_every": "checkpoint_every", "resume": "resume"}
_GRID_OPTIONS = ("n_factors", "reg")  # tune: comma lists, searched over


def _cli_params() -> dict[str, list]:
    """``--option`` -> the Param rows (of all estimators) that it sets."""
    out: dict[str, list] = {}
    for cls in registry.estimators():
        for p in cls._params:
            if p.cli:
                out.setdefault(p.cli, []).append(p)
    return out


def _dest(option: str) -> str:
    return "opt_" + option.lstrip("-").replace("-", "_")


def _add_estimator_options(group, grid: bool = False) -> None:
    kinds = {"int": int, "real": float}
    for option, params in _cli_params().items():
        p = params[0]
        owners = sorted({cls._registry_name for cls in registry.estimators()
                         for q in cls._params if q.cli == option})
        helptext = f"{p.doc} ({', '.join(owners)})"
        if grid and p.name in _GRID_OPTIONS:
            what = "integers" if p.kind == "int" else "numbers"
            group.add_argument(option, dest=_dest(option), type=_list_of(kinds[p.kind], what),
                               help=helptext + "; a comma list to search, e.g. 16,32",
                               metavar="LIST")
        elif p.kind == "choice":
            choices = sorted({c for q in params for c in q.choices if c is not None})
            group.add_argument(option, dest=_dest(option), choices=choices, help=helptext)
        elif p.kind == "dtype":
            group.add_argument(option, dest=_dest(option), choices=("float32", "float64"),
                               help=helptext)
        elif p.kind in ("random_state", "n_jobs"):
            group.add_argument(option, dest=_dest(option), type=int, help=helptext,
                               metavar="N")
        else:
            group.add_argument(option, dest=_dest(option), type=kinds[p.kind], help=helptext,
                               metavar="N" if p.kind == "int" else "X")


def _model_class(args: argparse.Namespace) -> type:
    if getattr(args, "bayesian", False):  # the older spelling of --model bayes
        if args.model not in (None, "bayes"):
            raise ValueError(f"--bayesian contradicts --model {args.model}")
        return registry.by_name("bayes")
    return registry.by_name(args.model or "als")


def _estimator_options(args: argparse.Namespace, cls: type,
                       grid: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(constructor parameters, fit() keywords)`` given on the command line for ``cls``;
    with ``grid``, the comma lists of ``_GRID_OPTIONS`` are left out (the caller searches)."""
    mine = {p.cli: p.name for p in cls._params if p.cli}
    fit_takes = inspect.signature(cls.fit).parameters
    wrong = [opt for opt in _cli_params() if opt not in mine
             and getattr(args, _dest(opt), None) is not None]
    wrong += ["--" + dest.replace("_", "-") for dest, kw in _FIT_OPTIONS.items()
              if getattr(args, dest, None) is not None and kw not in fit_takes]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not an option of --model "
                         f"{cls._registry_name} ({cls.__name__})")
    params = {name: getattr(args, _dest(opt)) for opt, name in mine.items()
              if getattr(args, _dest(opt), None) is not None
              and not (grid and name in _GRID_OPTIONS)}
    if "random_state" in mine.values() and "random_state" not in params:
        params["random_state"] = 0  # the CLI is reproducible by default
    fit_kw = {kw: getattr(args, dest) for dest, kw in _FIT_OPTIONS.items()
              if getattr(args, dest, None) is not None}
    if "checkpoint" in fit_kw:
        fit_kw["resume"] = bool(fit_kw.get("resume"))
    elif fit_kw.pop("resume", None) is not None or "checkpoint_every" in fit_kw:
        raise ValueError("--resume and --checkpoint-every need --checkpoint FILE")
    return params, fit_kw


def cmd_fit(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    cls = _model_class(args)
    params, fit_kw = _estimator_options(args, cls)
    if args.validation and "validation" not in inspect.signature(cls.fit).parameters:
        raise ValueError(f"--validation: not an option of --model {cls._registry_name} "
                         f"({cls.__name__}); score a ranking with 'fastmf evaluate -k'")
    out_dir = Path(args.output).resolve().parent
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK):
        raise ValueError(f"-o {args.output}: cannot write to {out_dir} (checked before fitting)")
    train = _read(args, args.data)
    validation = _read(args, args.validation) if args.validation else None
    if validation is not None:
        fit_kw["validation"] = validation
    model = cls(**params)
    _compile_notice(args)
    bar, callback = _progress(args, model._planned_iterations(), train, validation)
    try:
        with bar:
            model.fit(train, callback=callback, **fit_kw)
    except KeyboardInterrupt:
        if not hasattr(model, "user_factors_"):
            raise
        path = model.save(args.output)
        print(f"fastmf: interrupted; saved the model after {model._registry_unit(model.n_iter_)}"
              f" to {path}", file=sys.stderr)
        return 130
    path = model.save(args.output)
    payload = {
        "model": str(path), "estimator": type(model).__name__, "ratings": train.nnz,
        "users": train.n_users, "items": train.n_items, "iterations": model.n_iter_,
        "seconds": time.perf_counter() - t0,
    }
    if model._predicts_ratings:
        payload["train_rmse"] = _rmse_on(model, train)
    if hasattr(model, "n_samples_"):
        payload["samples"] = model.n_samples_
    elif getattr(model, "loss_curve_", None) is not None:
        payload["loss"] = float(model.loss_curve_[-1])
    if validation is not None:
        payload["validation_rmse"] = _rmse_on(model, validation)
    steps = (f"{model.n_iter_} sweeps ({model.burn_in} burn-in, {model.n_samples_} samples)"
             if hasattr(model, "n_samples_") else model._registry_unit(model.n_iter_))
    text = (f"fitted {train.nnz:,} ratings ({train.n_users:,} users x {train.n_items:,} items), "
            f"{steps}"
            + (f", train RMSE {payload['train_rmse']:.4f}" if "train_rmse" in payload else "")
            + (f", validation RMSE {payload['validation_rmse']:.4f}" if validation else "")
            + f"\nsaved {path}")
    _emit(args, payload, text)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fastmf.metrics import mae, ranking_report, rmse

    model = fastmf.load(args.model)
    test = _read(args, args.data)
    payload: dict[str, Any] = {"ratings": test.nnz}
    if model._predicts_ratings:
        pred = model.predict(test.user_ids[test.user_index], test.item_ids[test.item_index],
                             unseen=args.unseen)
        keep = np.isfinite(pred)
        payload.update(rmse=rmse(test.values[keep], pred[keep]),
                       mae=mae(test.values[keep], pred[keep]))
    k = args.k or (0 if model._predicts_ratings else 10)  # a scoring model has no RMSE
    if k:
        payload.update(ranking_report(model, test, k=k, threshold=args.threshold))
    _emit(args, payload, "\n".join(f"{k:14s} {v:.4f}" if isinstance(v, float) else
                                   f"{k:14s} {v}" for k, v in payload.items()))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    model = fastmf.load(args.model)
    user = _parse_id(args.user, model.user_ids_, "user")
    items, scores = model.recommend(user, n=args.n, exclude_rated=not args.include_rated,
                                    unseen="bias" if args.allow_unknown else "raise",
                                    rank_by=args.rank_by)
    titles = _titles(args.titles, model.item_ids_)
    payload = {"user": user, "items": [{"item": i, "score": s, **({"title": titles[i.item()]}
               if i.item() in titles else {})} for i, s in zip(items, scores)]}
    _emit(args, payload, "\n".join(f"{k + 1}\t{_label(i, titles)}\t{s:.4f}"
                                   for k, (i, s) in enumerate(zip(items, scores))))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    model = fastmf.load(args.model)
    titles = _titles(args.titles, model.item_ids_)
    if args.item is not None:
        key = _parse_id(args.item, model.item_ids_, "item")
        ids, sims = model.similar_items(key, n=args.n, shrink=args.shrink)
    else:
        key = _parse_id(args.user, model.user_ids_, "user")
        ids, sims = model.similar_users(key, n=args.n, shrink=args.shrink)
        titles = {}
    payload = {"query": key, "similar": [{"id": i, "cosine": s} for i, s in zip(ids, sims)]}
    _emit(args, payload, "\n".join(f"{k + 1}\t{_label(i, titles)}\t{s:.4f}"
                                   for k, (i, s) in enumerate(zip(ids, sims))))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from fastmf.model_selection import search

    cls = _model_class(args)
    params, _ = _estimator_options(args, cls, grid=True)
    ratings = _read(args, args.data)
    template = cls(**params)
    grid = {"n_factors": args.opt_factors or [16, 32, 64]}
    if any(p.name == "reg" for p in cls._params):
        grid["reg"] = args.opt_reg or [0.05, 0.1, 0.15]
    _compile_notice(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = search(template, ratings, grid, cv=args.folds, n_samples=args.n_candidates,
                        random_state=params.get("random_state", 0), refit=bool(args.output),
                        progress=not args.quiet)
    for w in caught:
        print(f"fastmf: warning: {w.message}", file=sys.stderr)
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
    out = plot_model(model, args.output, titles=_titles(args.titles, model.item_ids_),
                     n_labels=args.labels)
    _emit(args, {"plot": str(out)}, f"wrote {out}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def build_parser(estimator_options: bool = True) -> argparse.ArgumentParser:
    """The whole command line. ``estimator_options=False`` leaves out fit's and tune's
    estimator options, which import every estimator (and numba): the other commands, and
    ``fastmf --version`` / ``--help``, do not pay for them."""
    p = argparse.ArgumentParser(
        prog="fastmf",
        description="Matrix factorization recommenders: biased ALS, Bayesian (Gibbs) and "
                    "implicit-feedback ALS.",
        epilog="Run 'fastmf COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"fastmf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or logs")
    common.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")

    data = argparse.ArgumentParser(add_help=False)
    g = data.add_argument_group("input file")
    g.add_argument("--format", choices=FORMATS, default="auto",
                   help="file format (default: from the name and first line)")
    g.add_argument("--sep", help="field separator of a text file (default: sniffed)")
    g.add_argument("--header", choices=("auto", "yes", "no"), default="auto",
                   help="does the first line name the columns (default: auto)")
    g.add_argument("--columns", metavar="USER,ITEM,RATING",
                   help="the user, item and rating columns: names or 0-based positions "
                        "(default: recognised header names; a header with other names is "
                        "an error, never a guess)")
    g.add_argument("--user-col", help="user column: name or 0-based position")
    g.add_argument("--item-col", help="item column: name or 0-based position")
    g.add_argument("--rating-col", help="rating column: name or 0-based position")
    g.add_argument("--duplicates", choices=("raise", "mean", "last"), default="raise",
                   help="repeated (user, item) pairs (default: raise an error)")

    def model_choice(parser: argparse.ArgumentParser) -> None:
        if not estimator_options:
            return
        parser.add_argument("--model", choices=registry.names(), default=None,
                            help="the estimator (default als): "
                                 + ", ".join(f"{n} = {registry.by_name(n).__name__}"
                                             for n in registry.names()))
        parser.add_argument("--bayesian", action="store_true",
                            help="the same as --model bayes")

    s = sub.add_parser("demo", parents=[common], help="fit on built-in data and show results",
                       description="Fit on generated planted-model data (or MovieLens with "
                                   "--movielens) and show RMSE, recommendations and "
                                   "similar items. Needs no files.")
    s.add_argument("--movielens", metavar="PATH", help="use MovieLens data at PATH instead")
    s.add_argument("--variant", help="MovieLens variant (default: from the files in PATH)")
    s.add_argument("--factors", type=int, default=16, help="rank K (default 16)")
    s.add_argument("--iters", type=int, default=10, help="ALS iterations (default 10)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("fit", parents=[common, data], help="fit a model to a file",
                       description="Fit an estimator (--model, default als = BiasedALS) to "
                                   "the ratings in DATA and save it. Estimator options left "
                                   "out take the estimator's defaults.")
    s.add_argument("data", metavar="DATA",
                   help="ratings file (CSV, TSV, Parquet, MovieLens); - for standard input")
    s.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file (.npz)")
    s.add_argument("--validation", metavar="FILE", help="held-out ratings to monitor")
    s.add_argument("--early-stopping", type=int, metavar="N",
                   help="with --validation: stop after N iterations without improvement")
    s.add_argument("--checkpoint", metavar="FILE",
                   help="save the fit's state to FILE every --checkpoint-every iterations "
                        "and at the end (Ctrl-C also saves the model to -o)")
    s.add_argument("--checkpoint-every", type=int, metavar="N", help="(default: at the end)")
    s.add_argument("--resume", action="store_true", default=None,
                   help="continue from --checkpoint FILE if it exists (same data and "
                        "options); without it an existing FILE is started over")
    model_choice(s)
    if estimator_options:
        _add_estimator_options(s.add_argument_group("estimator options"))
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

    s = sub.add_parser("recommend", parents=[common], help="top-N items for a user",
                       description="The N best items for a user of a saved model, the items "
                                   "they rated left out (rating models rank by the "
                                   "probability of a liked item; see --rank-by).")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("--user", required=True, help="user id")
    s.add_argument("-n", type=int, default=10, help="how many (default 10)")
    s.add_argument("--include-rated", action="store_true", help="also items the user rated")
    s.add_argument("--allow-unknown", action="store_true",
                   help="for an unknown user, rank by item bias instead of failing")
    s.add_argument("--rank-by", choices=("liked", "rating"),
                   help="rating models: by the probability of a liked item (default) or by "
                        "predicted rating alone")
    s.add_argument("--titles", metavar="PATH", help="MovieLens folder or movie list for titles")
    s.set_defaults(func=cmd_recommend)

    s = sub.add_parser("similar", parents=[common], help="most similar items (or users)",
                       description="The items (or users) of a saved model whose factors are "
                                   "closest by cosine, shrunk by the evidence behind each "
                                   "(--shrink).")
    s.add_argument("model", metavar="MODEL")
    who = s.add_mutually_exclusive_group(required=True)
    who.add_argument("--item", help="item id")
    who.add_argument("--user", help="user id")
    s.add_argument("-n", type=int, default=10, help="how many (default 10)")
    s.add_argument("--shrink", type=float, default=10.0,
                   help="cosine x n/(n + SHRINK), n the candidate's ratings (default 10)")
    s.add_argument("--titles", metavar="PATH", help="MovieLens folder or movie list for titles")
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("tune", parents=[common, data],
                       help="choose n_factors (and reg) by cross-validation",
                       description="Cross-validate an estimator (--model) over --factors "
                                   "(x --reg where it has one) and report the best.")
    s.add_argument("data", metavar="DATA")
    s.add_argument("--folds", type=int, default=3, help="cross-validation folds (default 3)")
    s.add_argument("--n-candidates", type=int, metavar="N",
                   help="random search: try N of the grid's combinations")
    s.add_argument("-o", "--output", metavar="MODEL", help="refit the best on DATA, save here")
    model_choice(s)
    if estimator_options:
        _add_estimator_options(s.add_argument_group("estimator options"), grid=True)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(estimator_options=command in ("fit", "tune"))
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
    except (OSError, ValueError, KeyError, TypeError, FloatingPointError,
            ImportError) as exc:  # ModelFileError is a ValueError; OSError: disk full, ...
        if os.environ.get("FASTMF_DEBUG"):
            raise
        msg = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        # the library's hint is Python; on the command line the same choice is an option
        msg = msg.replace("pass duplicates='mean' or 'last'", "pass --duplicates mean (or last)")
        print(f"fastmf: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
