"""Stored 409s -> alerts: rules, detectors, lifecycle, notifiers (Slack, webhook, Alertmanager), outbox.

Entry points: `alerts.engine.AlertEngine` (for `watch`) and `alerts.commands` (for the CLI).
"""
