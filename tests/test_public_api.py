"""The public contract: the names DESIGN.md fixes import from ``trio_sse``, each documented."""

from __future__ import annotations

import inspect
import typing

import trio_sse
import trio_sse.backends
import trio_sse.client
import trio_sse.sse
import trio_sse.testing

CONTRACT = [
    "ServerSentEvent",
    "JSONServerSentEvent",
    "EventSourceResponse",
    "SendTimeoutError",
    "ShutdownToken",
    "Broadcaster",
]


def test_the_contract_names_import_from_the_package() -> None:
    from trio_sse import (  # noqa: F401 - the import itself is the test
        Broadcaster,
        EventSourceResponse,
        JSONServerSentEvent,
        SendTimeoutError,
        ServerSentEvent,
        ShutdownToken,
    )

    assert all(hasattr(trio_sse, name) for name in CONTRACT)


def public_names(module: object) -> list[str]:
    # Not identifiers: "@py_builtins" and "@pytest_ar" are what pytest's assertion rewriting
    # adds to the modules of a distribution that provides a plugin (trio_sse's pytest11 entry
    # point), under pytest only.
    return [
        name
        for name in dir(module)
        if name.isidentifier() and not name.startswith("_") and name != "annotations"
    ]


def test_every_public_name_has_a_docstring() -> None:
    undocumented = []
    for module in (trio_sse, trio_sse.backends, trio_sse.client, trio_sse.sse, trio_sse.testing):
        for name in public_names(module):
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue  # constants and type aliases are described in their module's docstring
            if typing.get_origin(value) is not None:
                continue  # a type alias (Python 3.10 takes ``Callable[...]`` for a class)
            if not inspect.getdoc(value):
                undocumented.append(f"{module.__name__}.{name}")
    assert undocumented == []


def test_the_sse_starlette_option_names_are_accepted() -> None:
    """A migrating app changes one import: every sse-starlette option keeps its name."""
    parameters = inspect.signature(trio_sse.EventSourceResponse).parameters
    for option in (
        "status_code",
        "headers",
        "media_type",
        "background",
        "ping",
        "sep",
        "ping_message_factory",
        "data_sender_callable",
        "send_timeout",
        "client_close_handler_callable",
        "shutdown_event",
        "shutdown_grace_period",
        "cleanup_timeout",
    ):
        assert option in parameters, option


def test_the_sse_starlette_import_module_exports_the_contract_names() -> None:
    """``from sse_starlette.sse import ...`` lines become ``from trio_sse.sse import ...``."""
    for name in (
        "EventSourceResponse",
        "ServerSentEvent",
        "JSONServerSentEvent",
        "SendTimeoutError",
    ):
        assert name in trio_sse.sse.__all__
        assert getattr(trio_sse.sse, name) is getattr(trio_sse, name)
    assert set(trio_sse.sse.__all__) == set(public_names(trio_sse.sse))


def test_default_ping_interval_is_a_class_attribute() -> None:
    assert trio_sse.EventSourceResponse.DEFAULT_PING_INTERVAL == 15


def test_the_fastapi_names_are_documented_in_their_docstrings_and_the_readme() -> None:
    import trio_sse.fastapi

    from .processes import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in trio_sse.fastapi.__all__:
        assert inspect.getdoc(getattr(trio_sse.fastapi, name)), name
        assert f"trio_sse.fastapi.{name}(" in readme, name
    assert "`fixed_event`" in readme
    assert "JSONServerSentEvent[Tick]" in readme  # the generic parameter
    assert trio_sse.ServerSentEvent.fixed_event is None


def test_revocation_across_processes_is_public_and_documented() -> None:
    """Issue 16 item 1: ``Broadcaster.revoke_everywhere`` and the backends' ``Revocations``."""
    from .processes import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert inspect.iscoroutinefunction(trio_sse.Broadcaster.revoke_everywhere)
    assert inspect.getdoc(trio_sse.Broadcaster.revoke_everywhere)
    assert not inspect.iscoroutinefunction(trio_sse.Broadcaster.revoke)  # still sync
    for name in ("Revocations", "Revoke"):
        assert name in trio_sse.backends.__all__
        assert f"`{name}`" in readme or f".{name}`" in readme, name
    assert inspect.getdoc(trio_sse.backends.Revocations)
    assert "await hub.revoke_everywhere(principal, farewell=...)" in readme


def test_topic_patterns_are_public_and_documented() -> None:
    """Issue 16 item 2: ``Broadcaster(patterns=...)`` and ``Broadcaster.topic_of``."""
    from .processes import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "patterns" in inspect.signature(trio_sse.Broadcaster).parameters
    assert inspect.getdoc(trio_sse.Broadcaster.topic_of)
    assert not inspect.iscoroutinefunction(trio_sse.Broadcaster.topic_of)
    assert 'Broadcaster(backend, patterns=["orders/*", "rooms/*"])' in readme
    assert "hub.topic_of(event)" in readme
