"""`make soak` (not in CI): `watch` under rotations, SIGKILLs, a receiver outage and bad lines."""
