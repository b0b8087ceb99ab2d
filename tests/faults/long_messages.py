"""Messages of about a megabyte built to make a featurizer slow, shared by the fault suite and
``benchmarks/bench_core.py``."""

LONG_MESSAGES: dict[str, str] = {
    "parens": "a(" * 500_000,  # the old code pattern's quadratic case
    "prose": "hello world, how are you " * 40_000,
    "cjk": "怎么" * 500_000,
    "backticks": "`a" * 500_000,
    "semicolons": "; \n" * 333_333,
}
