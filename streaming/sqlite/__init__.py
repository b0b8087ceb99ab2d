"""The embedded backend: a SQLite event log, checkpoints and the learner thread."""
