"""numba kernels of the linear reward model and the selection rules.

Private: ``bandit.engine``, ``bandit.policies`` and ``bandit.explain`` validate and convert,
then call these. Every kernel takes contiguous arrays and scalars only, gets its compilation
flags from ``bandit._config``, and has a plain NumPy twin in ``tests/bandit/naive.py``.

=========== ====================================================================
``rng``     decision seed -> offset into the pool of normal draws and a uniform
``linalg``  Cholesky factor of a packed precision, triangular solves, scores
``select``  each policy's action distribution, the exploration floor, the draw
``decide``  batch decide, posterior-mean rewards, posterior summaries
``learn``   feedback into user posteriors and their tenant's shared posterior
``shared``  the shared model's terms for a request and one observation into it
``explain`` the numbers of one decision's explanation
=========== ====================================================================

Per-user state is stored compactly: the posterior precision ``A`` (d x d, symmetric) as its
packed lower triangle in float32, row-major (entry (i, j), j <= i, at ``i*(i+1)//2 + j``), and
the natural mean ``b = A @ mu`` in float32. The arithmetic runs in float64, except the scores of
Thompson draws (float32: they only pick each draw's best arm).

numba's on-disk cache notices a change only in the file that defines a kernel, not in the
kernels it calls from a sibling module: after editing one of these files, delete
``bandit/_kernels/__pycache__`` so every caller is compiled again.
"""

from bandit._kernels.decide import (
    attribute_scores,
    decide_parallel,
    decide_serial,
    mean_batch_parallel,
    mean_batch_serial,
    mean_scores,
    posterior_batch,
    shared_row,
)
from bandit._kernels.explain import explain_terms
from bandit._kernels.learn import (
    LearnBatchArgs,
    absorb,
    learn_batch,
    learn_batch_args,
    learn_pairwise,
)
from bandit._kernels.linalg import (
    backward_solve,
    chol_from_packed,
    factor_scores,
    forward_many,
    forward_solve,
    inverse_lower,
    posterior,
    user_score,
)
from bandit._kernels.rng import seed_draws, splitmix64
from bandit._kernels.select import (
    POLICY_EGREEDY,
    POLICY_LINTS,
    POLICY_LINUCB,
    POLICY_SOFTMAX,
    POLICY_SQUARECB,
    POLICY_UNIFORM,
    apply_floor_and_pick,
    argmax_masked,
    greedy_family,
    ts_distribution,
    ucb_distribution,
)
from bandit._kernels.shared import shared_terms, shared_update

__all__ = [
    "POLICY_EGREEDY",
    "POLICY_LINTS",
    "POLICY_LINUCB",
    "POLICY_SOFTMAX",
    "POLICY_SQUARECB",
    "POLICY_UNIFORM",
    "LearnBatchArgs",
    "absorb",
    "apply_floor_and_pick",
    "argmax_masked",
    "attribute_scores",
    "backward_solve",
    "chol_from_packed",
    "decide_parallel",
    "decide_serial",
    "explain_terms",
    "factor_scores",
    "forward_many",
    "forward_solve",
    "greedy_family",
    "inverse_lower",
    "learn_batch",
    "learn_batch_args",
    "learn_pairwise",
    "mean_batch_parallel",
    "mean_batch_serial",
    "mean_scores",
    "posterior",
    "posterior_batch",
    "seed_draws",
    "shared_row",
    "shared_terms",
    "shared_update",
    "splitmix64",
    "ts_distribution",
    "ucb_distribution",
    "user_score",
]
