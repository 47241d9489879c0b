from __future__ import annotations

import argparse

import pytest

from servelab.core.config import ServerConfig, add_dataclass_args, from_args


def test_flags_come_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, ServerConfig)
    cfg = from_args(ServerConfig, parser.parse_args(
        ["--concurrency", "processes", "--workers", "4", "--models", "distilbert"]
    ))
    assert cfg.concurrency == "processes" and cfg.workers == 4 and cfg.models == ("distilbert",)
    assert from_args(ServerConfig, parser.parse_args([])) == ServerConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["--scheduler", "lottery"])


def test_validation_and_round_trip():
    with pytest.raises(ValueError, match="valid: threads, processes, async"):
        ServerConfig(concurrency="fibers")
    with pytest.raises(ValueError, match="workers"):
        ServerConfig(workers=0)
    cfg = ServerConfig(workers=3, scheduler="mlfq")
    assert ServerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.config_id != ServerConfig(workers=4, scheduler="mlfq").config_id
    assert cfg.config_id.startswith("threads-mlfq-w3")


def test_to_flags_round_trips_through_the_parser():
    from servelab.core.config import to_flags

    cfg = ServerConfig(concurrency="async", workers=3, offload="process", models=("a", "b"),
                       batch_timeout_ms=2.5)
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, ServerConfig)
    flags = to_flags(cfg)
    assert "--workers" in flags and "--scheduler" not in flags  # defaults skipped
    assert from_args(ServerConfig, parser.parse_args(flags)) == cfg
    assert from_args(ServerConfig, parser.parse_args(to_flags(cfg, skip_defaults=False))) == cfg


def test_config_id_hashes_only_fields_off_their_defaults():
    """A field added later with a default keeps every earlier configuration's id: cached sweeps,
    validate stores and policy files go on matching."""
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Later(ServerConfig):
        new_knob: float = field(default=0.0, metadata={"help": "added later"})

    for cfg in (ServerConfig(), ServerConfig(workers=3, scheduler="mlfq", max_batch=8)):
        later = Later(**cfg.to_dict())
        assert later.config_id == cfg.config_id
        assert Later(**cfg.to_dict(), new_knob=5.0).config_id != cfg.config_id
    assert ServerConfig().non_default() == {}
    assert ServerConfig(kernel="c-hold").non_default() == {"kernel": "c-hold"}
