"""The reload plan as a pure function: two configurations and the running
watchers in, what to bind, stop, restart, update and start out."""

from __future__ import annotations

from bigtop.config import Config, PluginSpec, Settings, SocketSpec, WatcherSpec
from bigtop.core.reload import Current, plan_reload


def config(*items: object) -> Config:
    return Config(
        settings=Settings(),
        watchers=tuple(i for i in items if isinstance(i, WatcherSpec)),
        sockets=tuple(i for i in items if isinstance(i, SocketSpec)),
        plugins=tuple(i for i in items if isinstance(i, PluginSpec)),
    )


def running(cfg: Config, state: str = "active", **sockets: tuple[str, ...]) -> dict:
    return {w.name: Current(w, state, sockets.get(w.name, ())) for w in cfg.watchers}


web = WatcherSpec(name="web", cmd="server")
worker = WatcherSpec(name="worker", cmd="work")


def test_nothing_changed_touches_nothing():
    old = config(web, worker, SocketSpec(name="http", port=8000))
    plan = plan_reload(old, old, running(old, web=("http",)), {})
    assert (plan.added, plan.removed, plan.restarted, plan.updated) == ([], [], [], [])
    assert (plan.sockets_added, plan.sockets_removed, plan.sockets_changed) == ([], [], [])


def test_watchers_added_and_removed():
    old = config(web, worker)
    new = config(web, WatcherSpec(name="beat", cmd="beat"))
    plan = plan_reload(old, new, running(old), {})
    assert plan.added == ["beat"]
    assert plan.removed == ["worker"]
    assert plan.restarted == plan.updated == []


def test_a_process_option_restarts_another_option_updates_in_place():
    old = config(web, worker)
    new = config(WatcherSpec(name="web", cmd="server --new"),
                 WatcherSpec(name="worker", cmd="work", numprocesses=3))
    plan = plan_reload(old, new, running(old), {})
    assert plan.restarted == ["web"] and plan.restart_running == ["web"]
    assert plan.updated == ["worker"]


def test_a_stopped_watcher_is_restarted_but_not_started_again():
    old = config(web)
    new = config(WatcherSpec(name="web", cmd="server --new"))
    plan = plan_reload(old, new, running(old, state="stopped"), {})
    assert plan.restarted == ["web"] and plan.restart_running == []


def test_a_failed_watcher_restarts_even_for_an_in_place_option():
    old = config(web)
    new = config(WatcherSpec(name="web", cmd="server", numprocesses=2))
    plan = plan_reload(old, new, running(old, state="failed"), {})
    assert plan.restarted == ["web"] and plan.updated == []


def test_a_changed_socket_is_rebound_and_its_users_restart():
    old = config(web, worker, SocketSpec(name="http", port=8000), SocketSpec(name="admin", port=9000))
    new = config(web, worker, SocketSpec(name="http", port=8001), SocketSpec(name="admin", port=9000))
    plan = plan_reload(old, new, running(old, web=("http",), worker=("admin",)), {})
    assert plan.sockets_changed == ["http"]
    assert plan.restarted == ["web"], "the watcher on the unchanged socket is not touched"
    old_sockets = {s.name: s for s in old.sockets}
    assert plan.bind_first(old_sockets) == ["http"], "another address: bound before the stop"


def test_a_socket_changed_on_the_same_address_is_bound_only_after_the_stop():
    old = config(web, SocketSpec(name="http", port=8000))
    new = config(web, SocketSpec(name="http", port=8000, backlog=16))
    plan = plan_reload(old, new, running(old, web=("http",)), {})
    assert plan.sockets_changed == ["http"]
    assert plan.bind_first({s.name: s for s in old.sockets}) == []


def test_sockets_added_and_removed():
    old = config(web, SocketSpec(name="gone", port=8000))
    new = config(web, SocketSpec(name="fresh", port=8001))
    plan = plan_reload(old, new, running(old), {})
    assert plan.sockets_added == ["fresh"] and plan.sockets_removed == ["gone"]
    assert plan.bind_first({s.name: s for s in old.sockets}) == ["fresh"]


def test_plugins_are_watchers_and_restart_when_their_options_change():
    stats = PluginSpec(name="stats", use="statsd", options={"port": "8125"})
    old = config(web, stats)
    new = config(web, PluginSpec(name="stats", use="statsd", options={"port": "9125"}))
    current = running(old)
    current["plugin:stats"] = Current(plan_reload(old, old, {}, {}).specs["plugin:stats"],
                                      "active")
    plan = plan_reload(old, new, current, {"plugin:stats": stats})
    assert plan.restarted == ["plugin:stats"]
    assert plan.plugins["plugin:stats"].options == {"port": "9125"}
    gone = plan_reload(old, config(web), current, {"plugin:stats": stats})
    assert gone.removed == ["plugin:stats"] and gone.plugins == {}
