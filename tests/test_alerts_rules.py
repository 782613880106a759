"""Alert settings, detectors and lifecycle: validation messages, defaults, and pure time logic."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conflictradar.alerts.config import DeliveryPolicy, parse_alert_config
from conflictradar.alerts.counts import Sample, Tally, WindowCount
from conflictradar.alerts.detectors import baseline_of, can_fire, detect, detect_windows
from conflictradar.alerts.evaluation import step_rule
from conflictradar.alerts.lifecycle import AlertState, Track, advance
from conflictradar.alerts.rules import DEFAULT_RULES, DetectorKind, Rule, Scope
from conflictradar.alerts.secrets import Secret, redact
from conflictradar.alerts.state import worth_keeping
from conflictradar.ingest.errors import ConfigError

ENV = {"SLACK_URL": "https://hooks.slack.com/services/T0/B0/sekrit", "HMAC": "k3y"}
T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def config(table: dict[str, Any], env: dict[str, str] = ENV) -> Any:
    return parse_alert_config(table, env)


# -- settings ------------------------------------------------------------------------------


def test_no_alerts_table_gives_the_default_rules_and_no_channels() -> None:
    cfg = config({})
    assert cfg.rules == DEFAULT_RULES
    assert [r.scope for r in cfg.rules] == [Scope.GLOBAL, Scope.ENDPOINT]
    assert all(r.detector is DetectorKind.BASELINE and r.min_count >= 10 for r in cfg.rules)
    assert cfg.channels == ()
    assert cfg.delivery == DeliveryPolicy()
    assert cfg.dashboard_url == "http://127.0.0.1:8501"


def test_spec_example_parses_with_every_fixed_key() -> None:
    cfg = config(
        {
            "channels": {"ops-slack": {"type": "slack", "url_env": "SLACK_URL"}},
            "rules": [
                {
                    "name": "409 spike per endpoint",
                    "scope": "endpoint",
                    "detector": "baseline",
                    "window": "5m",
                    "min_count": 20,
                    "for": "1m",
                    "channels": ["ops-slack"],
                }
            ],
        }
    )
    (rule,) = cfg.rules
    assert (rule.scope, rule.window_s, rule.min_count, rule.for_s) == (Scope.ENDPOINT, 300, 20, 60)
    assert rule.channels == ("ops-slack",)
    assert cfg.channels[0].url is not None
    assert cfg.channels[0].url.reveal() == ENV["SLACK_URL"]


def test_own_keys_parse() -> None:
    cfg = config(
        {
            "timeout": "2s",
            "retry_initial": "10ms",
            "retry_max": "1s",
            "max_delivery_age": "30s",
            "rules": [
                {
                    "name": "r",
                    "repeat_interval": "1h",
                    "history": 24,
                    "history_step": "1d",
                    "deviation": 5,
                    "resolve_after": "0s",
                    "flap_window": "30m",
                    "flap_count": 4,
                    "flap_resolve_after": "10m",
                    "severity": "critical",
                    "top": 5,
                }
            ],
        }
    )
    assert cfg.delivery == DeliveryPolicy(2.0, 0.01, 1.0, 30.0)
    r = cfg.rules[0]
    assert (r.repeat_interval_s, r.history, r.step_s, r.deviation) == (3600, 24, 86400, 5.0)
    assert (r.resolve_after_s, r.flap_window_s, r.flap_count, r.severity, r.top) == (
        0,
        1800,
        4,
        "critical",
        5,
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rulez": []}, "unknown key alerts.rulez; allowed keys are channels, default_rules,"),
        (
            {"rules": [{"name": "a", "windw": "5m"}]},
            "unknown key alerts.rules[0] ('a').windw; allowed keys are channels, detector,",
        ),
        (
            {"rules": [{"name": "a", "scope": "host"}]},
            "alerts.rules[0] ('a').scope = 'host' is not allowed; allowed values are cause, endpoint,"
            " global",
        ),
        (
            {"rules": [{"name": "a", "detector": "zscore"}]},
            "alerts.rules[0] ('a').detector = 'zscore' is not allowed; allowed values are baseline,"
            " threshold",
        ),
        (
            {"rules": [{"name": "a", "window": "five minutes"}]},
            "alerts.rules[0] ('a').window = 'five minutes' is not a duration",
        ),
        ({"rules": [{"name": "a", "window": "0s"}]}, "window = '0s' must be longer than 0s"),
        ({"rules": [{"name": "a", "min_count": 0}]}, "min_count = 0 must be at least 1"),
        (
            {"rules": [{"name": "a", "min_count": "ten"}]},
            "min_count = 'ten' must be a whole number",
        ),
        ({"rules": [{"name": "a", "deviation": -1}]}, "deviation = -1 must be a number > 0"),
        (
            {"rules": [{"name": "a", "channels": ["pager"]}]},
            "alerts.rules[0] ('a').channels: no channel named 'pager'; configured channels: none",
        ),
        (
            {
                "channels": {"s": {"type": "slack", "url_env": "SLACK_URL"}},
                "rules": [{"name": "a", "channels": ["pager"]}],
            },
            "no channel named 'pager'; configured channels: s",
        ),
        ({"rules": [{"name": "a"}, {"name": "a"}]}, "alerts.rules[1].name = 'a' is used by two"),
        ({"rules": [{"scope": "global"}]}, "alerts.rules[0].name is missing"),
        (
            {"rules": [{"name": "a", "window": "5m", "history_step": "1m"}]},
            "history_step = '1m' must be at least the window ('5m')",
        ),
        (
            {"channels": {"s": {"type": "teams", "url_env": "X"}}},
            "alerts.channels.s.type = 'teams' is not allowed; allowed values are alertmanager, slack,"
            " webhook",
        ),
        ({"channels": {"s": {"type": "slack"}}}, "alerts.channels.s.url_env is missing"),
        (
            {"channels": {"s": {"type": "slack", "url_env": "NOPE"}}},
            "alerts.channels.s.url_env = 'NOPE': the environment variable NOPE is not set",
        ),
        (
            {"channels": {"s": {"type": "slack", "url_env": "SLACK_URL", "secret_env": "HMAC"}}},
            "alerts.channels.s.secret_env is not allowed for a slack channel",
        ),
        (
            {"channels": {"s": {"type": "slack", "url_env": "SLACK_URL", "dedupe": True}}},
            "Slack incoming webhooks do not deduplicate",
        ),
        (
            {"channels": {"s": {"type": "webhook", "url_env": "HMAC"}}},
            "the environment variable HMAC does not hold an http:// or https:// URL",
        ),
        ({"retry_initial": "2s", "retry_max": "1s"}, "alerts.retry_max = '1s' must be at least"),
    ],
)
def test_bad_settings_name_key_value_and_what_is_allowed(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config(table)
    assert message in str(err.value)
    assert "k3y" not in str(err.value) and "sekrit" not in str(err.value)


def test_rules_without_channels_go_to_every_channel_and_empty_list_to_none() -> None:
    cfg = config(
        {
            "channels": {
                "a": {"type": "slack", "url_env": "SLACK_URL"},
                "b": {"type": "webhook", "url_env": "SLACK_URL", "secret_env": "HMAC"},
            },
            "rules": [{"name": "all"}, {"name": "quiet", "channels": []}],
        }
    )
    assert [c.name for c in cfg.channels_of(cfg.rules[0])] == ["a", "b"]
    assert cfg.channels_of(cfg.rules[1]) == ()


def test_backtest_does_not_need_the_secrets() -> None:
    table = {"channels": {"s": {"type": "slack", "url_env": "UNSET_VAR"}}}
    cfg = parse_alert_config(table, {}, require_secrets=False)
    assert cfg.channels[0].url is None


def test_secrets_never_print() -> None:
    cfg = config(
        {"channels": {"w": {"type": "webhook", "url_env": "SLACK_URL", "secret_env": "HMAC"}}}
    )
    text = f"{cfg!r} {cfg} {cfg.channels[0]!r} {cfg.channels[0].url}"
    assert "sekrit" not in text and "k3y" not in text and "hooks.slack.com" not in text
    assert "<secret>" in text
    assert redact(
        "POST https://hooks.slack.com/services/T0/B0/sekrit failed; path /services/T0/B0/sekrit",
        [Secret(ENV["SLACK_URL"])],
    ) == ("POST <secret> failed; path <secret>")


# -- detectors ---------------------------------------------------------------------------------

QUIET = Rule(name="q", scope=Scope.ENDPOINT, min_count=10)


def windows(*pairs: tuple[float, float]) -> list[Tally]:
    """(requests, 409s) per past window."""
    return [Tally(n, x) for n, x in pairs]


STEADY = windows(*[(1000, 40 + (i % 5) * 2 - 4) for i in range(30)])  # 3.6-4.4 %


def test_a_jump_from_1_to_3_on_a_quiet_endpoint_pages_nobody() -> None:
    history = windows(*[(100, 1)] * 12)
    assert not detect(QUIET, Tally(100, 3), history).active
    # Even a jump that stands out statistically stays below the floor on a quiet endpoint.
    verdict = detect(QUIET, Tally(100, 8), history)
    assert not verdict.active
    assert verdict.score is not None and verdict.score > QUIET.deviation
    assert "below the floor of 10" in verdict.reason


def test_more_traffic_at_the_same_rate_pages_nobody() -> None:
    for surge in (2, 4, 10):
        verdict = detect(QUIET, Tally(1000 * surge, 44 * surge), STEADY)
        assert not verdict.active, verdict.reason
        assert verdict.value == 44 * surge and verdict.baseline == pytest.approx(0.04)


def test_a_rate_spike_fires_with_or_without_a_traffic_surge() -> None:
    assert detect(QUIET, Tally(1000, 150), STEADY).active
    assert detect(QUIET, Tally(4000, 600), STEADY).active  # a spike during a surge
    assert not detect(QUIET, Tally(1000, 60), STEADY).active  # 1.5x: less than the ratio
    verdict = detect(QUIET, Tally(1000, 150), STEADY)
    assert verdict.rate == pytest.approx(0.15) and "15% of 1000 requests" in verdict.reason


def test_an_endpoint_that_never_conflicts_fires_at_the_floor() -> None:
    history = windows(*[(50, 0)] * 30)
    assert not detect(QUIET, Tally(50, 9), history).active
    assert detect(QUIET, Tally(50, 10), history).active


def test_baseline_is_robust_to_a_past_spike() -> None:
    spiky = STEADY[:24] + windows(*[(1000, 400)] * 6)
    base = baseline_of(spiky)
    assert base is not None and base.rate == pytest.approx(0.04, abs=0.003)
    assert detect(QUIET, Tally(1000, 150), spiky).active


def test_threshold_and_too_little_history_stays_silent() -> None:
    rule = replace(QUIET, detector=DetectorKind.THRESHOLD)
    assert detect(rule, Tally(100, 10), []).active and not detect(rule, Tally(100, 9), []).active
    cold = detect(QUIET, Tally(100, 90), STEADY[:9])  # 9 of 10 past windows: no baseline yet
    assert not cold.active and cold.warming
    assert "collecting history: 9 of 10 past windows" in cold.reason
    assert detect(QUIET, Tally(100, 90), STEADY[:10]).active


# -- lifecycle ---------------------------------------------------------------------------------

RULE = Rule(
    name="r",
    for_s=60,
    resolve_after_s=120,
    repeat_interval_s=3600,
    flap_count=3,
    flap_window_s=3600,
    flap_resolve_after_s=900,
    min_count=5,
)


def run(rule: Rule, script: Sequence[tuple[float, int]]) -> list[tuple[float, str]]:
    """Feed (minute, count) evaluations; the transitions as (minute, state[+repeat])."""
    track = Track(rule.name, rule.scope, "")
    out = []
    for minute, value in script:
        verdict = detect(replace(rule, detector=DetectorKind.THRESHOLD), Tally(100, value), [])
        track, change = advance(track, verdict, T0 + timedelta(minutes=minute), rule)
        if change is not None:
            out.append((minute, change.state.value + ("+repeat" if change.repeat else "")))
    return out


def test_pending_then_firing_after_for_then_resolved_after_resolve_after() -> None:
    script = [(0, 9), (0.5, 9), (1, 9), (2, 0), (3, 0), (4, 0), (5, 0)]
    assert run(RULE, script) == [(0, "pending"), (1, "firing"), (4, "resolved")]


def test_a_blip_shorter_than_for_never_fires() -> None:
    assert run(RULE, [(0, 9), (0.5, 0), (1, 0)]) == [(0, "pending"), (0.5, "inactive")]


def test_for_zero_fires_at_once() -> None:
    assert run(replace(RULE, for_s=0), [(0, 9)]) == [(0, "firing")]


def test_repeat_interval_renotifies_while_firing() -> None:
    script = [(0, 9), (1, 9), (30, 9), (61, 9), (90, 9), (122, 9)]
    assert run(RULE, script) == [
        (0, "pending"),
        (1, "firing"),
        (61, "firing+repeat"),
        (122, "firing+repeat"),
    ]


def test_a_short_quiet_gap_does_not_resolve() -> None:
    script = [(0, 9), (1, 9), (2, 0), (3, 9), (4, 0), (5, 9)]
    assert run(RULE, script) == [(0, "pending"), (1, "firing")]


def test_flapping_alert_holds_until_a_long_quiet() -> None:
    rule = replace(RULE, for_s=0, resolve_after_s=60)
    script = []
    for cycle in range(6):  # on for 1 min, off for 3 min, six times
        start = cycle * 4
        script += [(start, 9), (start + 1, 0), (start + 2, 0), (start + 3, 0)]
    script += [(t, 0) for t in range(24, 45)]
    changes = run(rule, script)
    fired = [m for m, s in changes if s == "firing"]
    assert len(fired) == 3  # flap_count starts, then it holds as flapping instead of flipping
    resolved = [m for m, s in changes if s == "resolved"]
    assert resolved[-1] >= 20 + 1 + 15  # the last resolve waited for flap_resolve_after (15 m)
    assert len(changes) == 6


def test_state_enum_values_are_the_documented_names() -> None:
    assert [s.value for s in AlertState] == ["inactive", "pending", "firing", "resolved"]


def test_alert_settings_are_typed_and_validated_when_the_settings_load(tmp_path: Path) -> None:
    from conflictradar.ingest.settings import load_settings

    plain = load_settings(env={}, cwd=tmp_path)
    assert plain.alerts.rules == DEFAULT_RULES and not plain.alerts.configured
    config = tmp_path / "conflictradar.toml"
    config.write_text('[[alerts.rules]]\nname = "fast"\nwindow = "90s"\n')
    with pytest.raises(
        ConfigError, match=r"alerts.rules\[0\] \('fast'\).window = '90s' must be whole minutes"
    ):
        load_settings(config, env={})  # any command fails, not only a starting engine
    config.write_text('[[alerts.rules]]\nname = "fast"\nwindow = "2m"\nratio = 1.5\n')
    (rule,) = load_settings(config, env={}).alerts.rules
    assert (rule.window_s, rule.short_window_s, rule.ratio) == (120, 60, 1.5)


# -- which scope values are judged ---------------------------------------------------------------


def _random_count(rng: random.Random, key: str) -> WindowCount:
    def tally(busy: int) -> Tally:
        requests = rng.choice([0, rng.randint(1, 40), rng.randint(40, 3000)])
        return Tally(requests, min(requests, rng.choice([0, 0, rng.randint(0, busy)])))

    def past(n: int) -> tuple[Tally, ...]:
        return tuple(tally(8) for _ in range(n))

    return WindowCount(key, tally(60), past(rng.choice([0, 5, 12, 30])), tally(40),
                       past(rng.choice([0, 12, 30])))  # fmt: skip


RULES = (*DEFAULT_RULES, replace(QUIET, detector=DetectorKind.THRESHOLD, min_count=3),
         replace(QUIET, short_window_s=QUIET.window_s), replace(QUIET, min_count=0))  # fmt: skip


def test_a_scope_value_below_both_floors_is_never_judged_active() -> None:
    rng = random.Random(13)
    skipped = 0
    for rule in RULES:
        for i in range(4000):
            count = _random_count(rng, str(i))
            if not can_fire(rule, count):
                skipped += 1
                assert not detect_windows(rule, count).active, (rule, count)
    assert skipped > 4000  # the check did skip most of them


def test_judging_only_what_can_fire_changes_no_alert() -> None:
    """step_rule skips scope values that cannot fire and have no alert: what it returns is what
    judging every value returns, less the inactive tracks that nobody keeps."""
    rng = random.Random(29)
    now = T0 + timedelta(hours=3)
    for rule in RULES:
        for _round in range(30):
            counts = tuple(_random_count(rng, f"/e{i}") for i in range(120))
            sample = Sample(now, tuple(sorted(counts, key=lambda c: c.key)))
            states = [
                AlertState.PENDING,
                AlertState.FIRING,
                AlertState.RESOLVED,
                AlertState.INACTIVE,
            ]
            tracks = {
                f"/e{i}": Track(rule.name, rule.scope, f"/e{i}", state=rng.choice(states),
                                since=now - timedelta(minutes=rng.randint(1, 90)),
                                active_since=now - timedelta(minutes=5),
                                last_notified=now - timedelta(minutes=rng.randint(1, 300)),
                                fire_starts=(now - timedelta(minutes=20),) * rng.randint(0, 1))
                for i in rng.sample(range(140), 15)
            }  # fmt: skip
            updated, transitions = step_rule(rule, tracks, sample)
            every: dict[str, Track] = {}
            changes = []
            for key in sorted({c.key for c in counts} | set(tracks)):
                before = tracks.get(key) or Track(rule.name, rule.scope, key)
                after, change = advance(before, detect_windows(rule, sample.get(key)), now, rule)
                every[key] = after
                if change is not None:
                    changes.append((key, change))
            assert [(t.track.key, t.change) for t in transitions] == changes
            for key, track in every.items():
                if key in updated:
                    assert updated[key] == track
                else:
                    assert key not in tracks and track.state is AlertState.INACTIVE
                    assert not worth_keeping(track, now) and not track.fire_starts
