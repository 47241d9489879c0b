"""Arms: the default space, arm files that restrict / extend it, labels, JSON form."""

from __future__ import annotations

import json

import pytest

from servelab.core.config import ServerConfig
from servelab.meta.arms import ArmSet, arms_from_spec, default_arms, label, load_arms


def test_default_arms_cover_the_seed_space() -> None:
    arms = default_arms()
    assert len(arms) >= 27
    assert len(set(arms.ids)) == len(arms)
    kinds = {(a.config.concurrency, a.config.offload if a.config.concurrency == "async" else "")
             for a in arms}
    assert kinds == {("threads", ""), ("processes", ""), ("async", "thread"),
                     ("async", "process")}
    assert {a.config.scheduler for a in arms} == {"fifo", "priority", "sjf", "mlfq"}
    assert {a.config.workers for a in arms if a.config.concurrency == "threads"} == {2, 4, 8}
    assert {a.config.workers for a in arms if a.config.concurrency == "processes"} == {1, 2, 4}


def test_label() -> None:
    cfg = ServerConfig(concurrency="threads", workers=4, scheduler="sjf")
    assert label(cfg) == "threads×4 sjf"
    assert label(ServerConfig(concurrency="async", offload="process", workers=2)) == \
        "async/process×2 fifo"


def test_restrict_and_exclude(tmp_path) -> None:
    path = tmp_path / "arms.yaml"
    path.write_text("restrict: {concurrency: [threads]}\nexclude: [{workers: 8}]\n")
    arms = load_arms(path)
    assert len(arms) == 8
    assert all(a.config.concurrency == "threads" and a.config.workers in (2, 4) for a in arms)


def test_extend_with_product_and_arms(tmp_path) -> None:
    spec = {"default": True, "product": {"concurrency": ["threads"], "workers": [16],
                                         "scheduler": ["fifo"]},
            "arms": [{"concurrency": "processes", "workers": 2, "max_batch": 4,
                      "batch_timeout_ms": 2.0}]}
    path = tmp_path / "arms.json"
    path.write_text(json.dumps(spec))
    arms = load_arms(path)
    assert len(arms) == len(default_arms()) + 2
    assert arms[len(arms) - 1].label == "procs×2 fifo b4"


def test_plain_list_and_duplicates_merge() -> None:
    arms = arms_from_spec([{"concurrency": "processes", "offload": "inline"},
                           {"concurrency": "processes"}])
    assert len(arms) == 1  # offload is meaningless outside async: the same server


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        arms_from_spec({"bogus": 1})
    with pytest.raises(ValueError, match="no arm left"):
        arms_from_spec({"restrict": {"workers": [99]}})
    with pytest.raises(ValueError, match="unknown field"):
        arms_from_spec({"exclude": [{"colour": "red"}]})


def test_json_round_trip() -> None:
    arms = default_arms()
    back = ArmSet.from_list(json.loads(json.dumps(arms.to_list())))
    assert back == arms and back.labels == arms.labels
