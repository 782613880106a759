"""Mutation fuzzing of ingest: the operators and seed corpus shared by the hypothesis suite
(tests/test_fuzz.py), the long run (`make fuzz`, tests.fuzz.run) and the soak (`make soak`)."""
