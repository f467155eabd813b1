"""Env (src/atoll/bindings/env.py)."""

from __future__ import annotations

import pytest

from atoll.bindings import Env


def test_bindings_by_attribute_and_by_key() -> None:
    def handler() -> str:
        return "called"

    env = Env({"NAME": "value", "CALL": handler})
    assert env.NAME == env["NAME"] == "value"
    assert env.CALL is handler  # a function binding is returned as it is, not bound
    assert env.CALL() == "called"
    assert dict(env) == {"NAME": "value", "CALL": handler}


def test_a_binding_named_like_a_method_leaves_the_method() -> None:
    env = Env({"get": "binding", "keys": "binding"})
    assert env.get("get") == "binding"
    assert list(env.keys()) == ["get", "keys"]
    assert env["keys"] == "binding"


def test_env_is_read_only_and_names_what_is_missing() -> None:
    env = Env({"A": 1})
    with pytest.raises(AttributeError, match="read-only"):
        env.A = 2
    with pytest.raises(AttributeError, match="read-only"):
        env.B = 2
    with pytest.raises(AttributeError, match=r"env has no binding 'B' \(bindings: A\)"):
        _ = env.B
    assert env.A == 1
