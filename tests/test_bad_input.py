"""The catalogue of bad input: each case names its exception type and message, and leaves
the caller's data exactly as it was."""

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import fastmf
from fastmf import BiasedALS, Ratings

U3, I3, R3 = np.array([1, 2, 3]), np.array([10, 20, 10]), np.array([4.0, 3.0, 5.0])
GOOD = Ratings(U3, I3, R3)


def fitted():
    return BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(GOOD)


# (id, callable taking the arguments, the arguments, exception type, message regex)
CATALOGUE = [
    # ratings
    ("nan-rating", Ratings, (U3, I3, np.array([4.0, np.nan, 5.0])), ValueError,
     "ratings must be finite; row 1 has nan"),
    ("inf-rating", Ratings, (U3, I3, np.array([4.0, 3.0, np.inf])), ValueError,
     "ratings must be finite; row 2"),
    ("string-rating", Ratings, (U3, I3, np.array(["4", "x", "5"], dtype=object)), ValueError,
     "ratings must be numeric; row 1 has 'x'"),
    ("none-rating", Ratings, (U3, I3, [4.0, None, 5.0]), ValueError, "row 1"),
    ("2d-ratings", Ratings, (U3, I3, np.ones((3, 1))), ValueError, "ratings must be 1-D"),
    # ids
    ("float-id", Ratings, (np.array([1.0, 2.5, 3.0]), I3, R3), ValueError,
     "user ids must be integers or labels; row 1 has 2.5"),
    ("nan-id", Ratings, (U3, np.array([1.0, np.nan, 3.0]), R3), ValueError,
     "item ids must be integers or labels; row 1 has nan"),
    ("none-id", Ratings, (np.array([1, None, 3], dtype=object), I3, R3), ValueError,
     "user id missing at row 1: None"),
    ("mixed-id-types", Ratings, (np.array([1, "a", 3], dtype=object), I3, R3), TypeError,
     "user ids must be mutually comparable"),
    ("2d-ids", Ratings, (np.ones((3, 2)), I3, R3), ValueError, "user ids must be 1-D"),
    ("length-mismatch", Ratings, (U3, I3[:2], R3), ValueError,
     "same length, got 3, 2 and 3"),
    ("duplicate-pair", Ratings, (np.array([1, 1]), np.array([5, 5]), np.array([1.0, 2.0])),
     ValueError, r"duplicate rating for \(user 1, item 5\)"),
    ("bad-duplicates-policy", lambda *a: Ratings(*a, duplicates="sum"), (U3, I3, R3),
     ValueError, "duplicates must be one of"),
    ("id-outside-universe", lambda *a: Ratings(*a, user_ids=[1, 2]), (U3, I3, R3), ValueError,
     "user id 3 at row 2 is not in user_ids"),
    ("universe-with-repeats", lambda *a: Ratings(*a, user_ids=[1, 1, 2, 3]), (U3, I3, R3),
     ValueError, "user_ids lists an id more than once"),
    # matrices and frames
    ("sparse-with-nan", Ratings.from_matrix,
     (sp.csr_array(np.array([[1.0, 0], [0, np.nan]])),), ValueError, "ratings must be finite"),
    ("sparse-duplicates", Ratings.from_matrix,
     (sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))),
                   shape=(2, 2)),), ValueError, "duplicate rating"),
    ("3d-array", Ratings.from_matrix, (np.ones((2, 2, 2)),), ValueError,
     r"expected a 2-D users x items array, got shape \(2, 2, 2\)"),
    ("string-matrix", Ratings.from_matrix, (np.array([["a", "b"]]),), TypeError,
     "a rating matrix must be numeric"),
    ("frame-unknown-columns", Ratings.from_dataframe,
     (pd.DataFrame({"user": [1], "thing": [2], "rating": [3.0]}),), ValueError,
     r"cannot tell which column holds the item from the names \['user', 'thing', 'rating'\]"),
    ("unsupported-type", lambda X: BiasedALS().fit(X), ([(1, 2, 3.0)],), TypeError,
     "expected Ratings, a pandas DataFrame"),
    ("empty-data", lambda X: BiasedALS().fit(X), (sp.csr_array((3, 3)),), ValueError,
     "cannot fit on an empty rating set"),
    # hyper-parameters (checked at fit time, as in scikit-learn)
    ("n_factors-zero", lambda: BiasedALS(0).fit(GOOD), (), ValueError,
     "n_factors must be a positive int, got 0"),
    ("n_factors-float", lambda: BiasedALS(2.5).fit(GOOD), (), ValueError,
     "n_factors must be a positive int, got 2.5"),
    ("negative-reg", lambda: BiasedALS(reg=-1).fit(GOOD), (), ValueError,
     "reg must be finite and >= 0, got -1"),
    ("nan-reg", lambda: BiasedALS(reg=float("nan")).fit(GOOD), (), ValueError,
     "reg must be finite and >= 0"),
    ("inf-reg-bias", lambda: BiasedALS(reg_bias=float("inf")).fit(GOOD), (), ValueError,
     "reg_bias must be finite and >= 0"),
    ("string-reg", lambda: BiasedALS(reg="0.1").fit(GOOD), (), TypeError,
     "reg must be a real number"),
    ("n_iter-zero", lambda: BiasedALS(n_iter=0).fit(GOOD), (), ValueError,
     "n_iter must be a positive int, got 0"),
    ("bad-reg-scaling", lambda: BiasedALS(reg_scaling="log").fit(GOOD), (), ValueError,
     "reg_scaling must be 'count' or 'none'"),
    ("bad-bias-update", lambda: BiasedALS(bias_update="both").fit(GOOD), (), ValueError,
     "bias_update must be 'joint' or 'sequential'"),
    ("bad-solver", lambda: BiasedALS(solver="lu").fit(GOOD), (), ValueError,
     "solver must be 'cholesky' or 'cg'"),
    ("cg-steps-zero", lambda: BiasedALS(solver="cg", cg_steps=0).fit(GOOD), (), ValueError,
     "cg_steps must be a positive int"),
    ("int-dtype", lambda: BiasedALS(dtype="int32").fit(GOOD), (), ValueError,
     "dtype must be float32 or float64"),
    ("n_jobs-zero", lambda: BiasedALS(n_jobs=0).fit(GOOD), (), ValueError,
     "n_jobs must be a positive int, -1 or None"),
    ("bad-random-state", lambda: BiasedALS(random_state="x").fit(GOOD), (), ValueError,
     "random_state must be a non-negative int"),
    # warm starts
    ("init-wrong-shape", lambda F: BiasedALS(2).fit(GOOD, init_user_factors=F),
     (np.zeros((3, 3)),), ValueError, r"init_user_factors must have shape \(3, 2\)"),
    ("init-wrong-dtype", lambda F: BiasedALS(2).fit(GOOD, init_item_factors=F),
     (np.full((2, 2), "a"),), TypeError, "init_item_factors must be numeric"),
    ("init-nan", lambda F: BiasedALS(2).fit(GOOD, init_user_factors=F),
     (np.full((3, 2), np.nan),), ValueError, "init_user_factors contains NaN or inf"),
    ("early-stop-without-validation", lambda: BiasedALS().fit(GOOD, early_stopping_rounds=2),
     (), ValueError, "early_stopping_rounds needs validation data"),
    # numerical guard: lambda = 0 on rank-deficient rows
    ("zero-reg-rank-deficient", lambda: BiasedALS(4, reg=0.0).fit(GOOD), (),
     FloatingPointError, "iteration 1, user half-step: .* not positive definite"),
    # prediction and recommendation
    ("predict-unfitted", lambda: BiasedALS().predict([1], [10]), (), AttributeError,
     "not fitted yet"),
    ("predict-length-mismatch", lambda: fitted().predict([1, 2], [10]), (), ValueError,
     "same length"),
    ("predict-unknown-raise", lambda: fitted().predict([1], [99], unseen="raise"), (),
     KeyError, "unknown item id 99"),
    ("predict-bad-policy", lambda: fitted().predict([1], [10], unseen="zero"), (), ValueError,
     "unseen must be one of"),
    ("recommend-n-zero", lambda: fitted().recommend(1, n=0), (), ValueError,
     "n must be a positive int"),
    ("similar-unknown", lambda: fitted().similar_items(99), (), KeyError,
     "unknown item id 99"),
    ("fold-in-other-id-type", lambda: fitted().fold_in(Ratings(["a"], [10], [3.0])), (),
     TypeError, "user ids of dtype"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_a_clear_error_and_input_is_untouched(case):
    _, fn, args, exc, message = case
    before = copy.deepcopy(args)
    with pytest.raises(exc, match=message):
        fn(*args)
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        elif sp.issparse(a):
            np.testing.assert_array_equal(a.toarray(), b.toarray())  # NaN == NaN here
        elif isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)


def test_catalogue_is_at_least_thirty_classes():
    assert len(CATALOGUE) >= 30


def test_read_only_and_memory_mapped_inputs_work(tmp_path):
    users = np.array([1, 1, 2, 3, 3])
    items = np.array([1, 2, 1, 2, 3])
    mm = np.memmap(tmp_path / "r.dat", dtype=np.float64, mode="w+", shape=(5,))
    mm[:] = [4, 3, 5, 2, 1]
    mm.flush()
    ro = np.memmap(tmp_path / "r.dat", dtype=np.float64, mode="r", shape=(5,))
    users.setflags(write=False)
    model = BiasedALS(n_factors=2, n_iter=3, random_state=0).fit(Ratings(users, items, ro))
    init = np.ones((3, 2))
    init.setflags(write=False)
    BiasedALS(n_factors=2, n_iter=1).fit(Ratings(users, items, ro), init_user_factors=init)
    assert np.isfinite(model.predict([1], [3])).all()


def test_int64_ids_beyond_2_31_and_unicode_ids():
    big = np.array([2**40, 2**40 + 1, 2**62], dtype=np.int64)
    model = BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(Ratings(big, I3, R3))
    assert model.user_ids_.dtype == np.int64 and model.user_ids_[-1] == 2**62
    assert model.predict([2**62], [10])[0] == pytest.approx(
        model.predict(np.array([2**62]), np.array([10]))[0])
    names = ["Zoë", "Jürgen", "李"]
    model = BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(Ratings(names, I3, R3))
    assert set(model.user_ids_) == set(names)
    assert np.isfinite(model.predict(["李"], [20])[0])


def test_negative_ids_are_labels_not_indices():
    model = BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(
        Ratings(np.array([-5, -1, 7]), I3, R3))
    assert list(model.user_ids_) == [-5, -1, 7]
    assert model.predict([-5], [10])[0] != model.predict([999], [10])[0]


def test_dataframe_is_not_modified():
    df = pd.DataFrame({"user": ["a", "b", "a"], "item": [1, 1, 2], "rating": [1.0, 2.0, 3.0]})
    before = df.copy(deep=True)
    BiasedALS(n_factors=2, n_iter=2, random_state=0).fit(df)
    pd.testing.assert_frame_equal(df, before)


def test_fastmf_exports_the_error_type():
    assert issubclass(fastmf.ModelFileError, ValueError)


def test_duplicate_mean_of_huge_ratings_does_not_overflow():
    """Found by hypothesis: (a + b) / 2 overflowed to inf for a, b near the float64 maximum."""
    r = Ratings([0, 0], [0, 0], [8.988465674311579e307, 8.98846567431158e307],
                duplicates="mean")
    assert np.isfinite(r.values).all() and r.values[0] == pytest.approx(8.98846567431158e307)
