"""Settings -> evaluation: what an alert rule says (scope, detector, timing) and the defaults.

A rule is plain data, parsed and validated with the rest of the settings at load
(`ingest.rule_settings`, so the dashboard can show it too); the detectors and the lifecycle read
it. Durations are seconds.
"""

from __future__ import annotations

from conflictradar.ingest.alert_settings import DEFAULT_RULES, DetectorKind, Rule, Scope

__all__ = ["DEFAULT_RULES", "DetectorKind", "Rule", "Scope"]
