"""Tiers competing in one run (issue #15): ``tier_mix`` draws each request's tier (seeded) from its weights, sends
it and records it in ``tier_requested``, in the burst engine and in Locust; the analysis labels split by it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bedrock_lab.cellspec import parse_cell, pick_tier, tier_weights
from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.errors import ConfigError
from bedrock_lab.stats.labels import label_records

MODEL = "amazon.nova-lite-v1:0"
MIX = "priority:1,default:1,flex:2"


def test_tier_mix_is_validated_and_written_one_way() -> None:
    spec = parse_cell({"model_id": MODEL, "users": 1, "duration_s": 1,
                       "tier_mix": {"priority": 1, "flex": 2.5}})  # a sweep file's mapping  # fmt: skip
    assert spec.tier_mix == "priority:1,flex:2.5"
    assert tier_weights(spec.tier_mix) == {"priority": 1.0, "flex": 2.5}
    for bad in ("priority", "fast:1", "priority:0", "priority:1,priority:2", "flex:x"):
        with pytest.raises(ConfigError, match="tier_mix") as err:
            parse_cell({"model_id": MODEL, "users": 1, "duration_s": 1, "tier_mix": bad}, source="my.yaml")
        assert "my.yaml" in str(err.value) and "priority:1,default:1,flex:1" in str(err.value)


def test_pick_tier_is_seeded_and_follows_the_weights() -> None:
    weights = tier_weights(MIX)
    draws = [pick_tier(weights, 7, f"w{i % 4}:{i}") for i in range(4000)]
    assert draws == [pick_tier(weights, 7, f"w{i % 4}:{i}") for i in range(4000)]
    assert draws != [pick_tier(weights, 8, f"w{i % 4}:{i}") for i in range(4000)]
    share = Counter(draws)
    assert 0.45 < share["flex"] / len(draws) < 0.55 and 0.2 < share["priority"] / len(draws) < 0.3


def test_burst_sends_and_records_each_requests_tier(target: Target, tmp_path: Path) -> None:
    def run(out: Path) -> object:
        spec = BurstSpec(MODEL, users=4, requests=80, max_tokens=16, tier_mix=MIX, background_load=0.5, seed=3)
        return run_burst_sync(spec, target=target, out_dir=out, progress=False)

    df = run(tmp_path / "a").records()  # type: ignore[attr-defined]
    assert (df["status"] == "ok").all()
    assert set(df["tier_requested"]) == {"priority", "default", "flex"}
    assert (df["tier_served"] == df["tier_requested"]).all()  # the emulator was asked for that tier
    assert set(df["background_load"]) == {0.5}
    assert 0.3 < (df["tier_requested"] == "flex").mean() < 0.7
    again = run(tmp_path / "b").records()  # type: ignore[attr-defined]
    both = df.merge(again, on=["worker", "seq"])  # which worker sends how many depends on timing: common ones
    assert len(both) >= 40 and (both["tier_requested_x"] == both["tier_requested_y"]).all()
    # the analysis groups by the tier each request asked for, not by the cell
    assert set(label_records(df)["tier"]) == {"priority", "default", "flex"}


@pytest.mark.slow
def test_locust_sends_and_records_each_requests_tier(target: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, users=3, duration_s=2, max_tokens=16, tier_mix="priority:1,flex:1", seed=4,
                     background_load=0.0, run_id="mix")  # fmt: skip
    res = run_locust(spec, target, tmp_path, html=False)
    df = res.records()
    assert len(df) >= 10 and (df["status"] == "ok").all()
    assert set(df["tier_requested"]) == {"priority", "flex"}
    assert (df["tier_served"] == df["tier_requested"]).all()
    assert set(df["background_load"]) == {0.0}


@pytest.mark.slow
def test_locust_workers_draw_their_own_tier_sequences(target: Target, tmp_path: Path) -> None:
    """Each worker's user k drew the same tiers as every other worker's user k (seeded by user only); now the
    worker's index is in the seed, so two workers are two independent samples of the mix."""
    spec = BurstSpec(MODEL, users=4, duration_s=3, max_tokens=8, tier_mix="priority:1,flex:1", seed=4, run_id="w")
    df = run_locust(spec, target, tmp_path, workers=2, html=False).records()
    df = df.assign(pid=df["worker"].str.rsplit("-", n=2).str[1], user=df["worker"].str.rsplit("-u", n=1).str[1])
    assert df["pid"].nunique() == 2
    seqs = {key: tuple(g.sort_values("seq")["tier_requested"])[:20] for key, g in df.groupby(["pid", "user"])}
    by_user: dict[str, list[tuple[str, ...]]] = {}
    for (_pid, user), seq in seqs.items():
        by_user.setdefault(user, []).append(seq)
    pairs = [v for v in by_user.values() if len(v) == 2 and min(map(len, v)) >= 10]
    assert pairs and all(a != b for a, b in pairs)
