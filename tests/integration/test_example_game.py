"""The example module examples/game.c (class "game") against the real
binaries: joining, moves, team chat, the auto-response, the durable tick and
scores, the HTTP scoreboard, and a SIGKILL of the room's shard."""
import asyncio
import http.client
import json
import os
import signal
import urllib.request

import pytest
import websockets

from conftest import BUILD, SHARD, Roomd

MODULE = os.path.join(BUILD, "examples", "roomd_example_game.so")
ROOM = "arena"
WAIT = 20  # seconds: the bound on every single wait below


def run(coro, limit=180):
    return asyncio.run(asyncio.wait_for(coro, limit))


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return json.loads(r.read())


def handshake(r, query):
    """A WebSocket upgrade by hand: (status, body) of a refused join."""
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    try:
        c.request("GET", f"/game/{ROOM}?{query}", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        res = c.getresponse()
        return res.status, res.read().decode()
    finally:
        c.close()


class Player:
    """One client; keeps everything it received, in order, in `seen`."""

    def __init__(self, r, name, team):
        self.r, self.name, self.team = r, name, team
        self.seen = []

    async def __aenter__(self):
        self.ws = await websockets.connect(f"{self.r.ws}/game/{ROOM}?name={self.name}&team={self.team}")
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def next(self, want, timeout=WAIT):
        """The next message for which want(msg) is true (JSON decoded when it
        is an object); the ones skipped stay in self.seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.name}: nothing wanted within {timeout}s; last: {self.seen[-8:]}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            msg = json.loads(raw) if isinstance(raw, str) and raw.startswith("{") else raw
            self.seen.append(msg)
            if want(msg):
                return msg

    async def type(self, t, **match):
        return await self.next(lambda m: isinstance(m, dict) and m.get("type") == t
                               and all(m.get(k) == v for k, v in match.items()))

    async def ask(self, msg, t):
        await self.ws.send(json.dumps(msg) if isinstance(msg, dict) else msg)
        return await self.type(t)

    async def move(self, dx, dy):
        await self.ws.send(json.dumps({"type": "move", "dx": dx, "dy": dy}))
        return await self.type("moved", name=self.name)

    def got(self, t):
        return [m for m in self.seen if isinstance(m, dict) and m.get("type") == t]


@pytest.fixture
def game(tmp_path):
    # --hibernate-after 300ms: between ticks the room hibernates, so every
    # tick also exercises create() rebuilding the room from storage.
    r = Roomd(tmp_path, shards=2, extra=("--module", MODULE, "--hibernate-after", "300ms"))
    yield r
    r.stop()


def test_bad_join_parameters_are_refused_with_400(game):
    for query, why in [("team=red", "name must be"),
                       ("name=&team=red", "name must be"),
                       ("name=" + "x" * 25 + "&team=red", "name must be"),
                       ("name=a%20b&team=red", "name must be"),
                       ("name=ada", "team must be red or blue"),
                       ("name=ada&team=green", "team must be red or blue")]:
        status, body = handshake(game, query)
        assert status == 400, (query, status, body)
        assert why in body, (query, body)


def test_game_round_trip_and_shard_restart(game):
    owner = game.route(f"game/{ROOM}")

    async def go():
        async with Player(game, "ada", "red") as ada, Player(game, "bob", "red") as bob, \
                Player(game, "cyd", "blue") as cyd:
            # --- joining: welcome with the board, "joined" to the others
            w = await ada.type("welcome")
            assert (w["you"], w["team"], w["grid"]) == ("ada", "red", 20)
            assert [9, 9] in w["goal"] and [10, 10] in w["goal"]
            w = await bob.type("welcome")
            assert set(w["players"]) == {"ada", "bob"}
            assert w["players"]["bob"] == {"team": "red", "x": 0, "y": 0, "score": 0}
            assert (await ada.type("joined"))["name"] == "bob"
            w = await cyd.type("welcome")
            assert set(w["players"]) == {"ada", "bob", "cyd"}
            assert w["players"]["cyd"] == {"team": "blue", "x": 19, "y": 19, "score": 0}
            for p in (ada, bob):
                j = await p.type("joined", name="cyd")
                assert (j["team"], j["x"], j["y"]) == ("blue", 19, 19)

            # A second "ada" while she plays: 409.
            status, body = await asyncio.to_thread(handshake, game, "name=ada&team=blue")
            assert status == 409 and "already playing" in body

            # --- moves are broadcast and reflected in the state
            m = await bob.move(1, 0)
            assert (m["x"], m["y"]) == (1, 0)
            assert (await ada.type("moved", name="bob"))["x"] == 1
            await bob.move(-1, -1)  # (0, 0) -> clamped at the edge
            await bob.move(1, 0)
            st = await cyd.ask({"type": "state"}, "state")
            assert {k: (v["x"], v["y"]) for k, v in st["players"].items()} == \
                {"ada": (0, 0), "bob": (1, 0), "cyd": (19, 19)}

            # --- invalid messages get an error and change nothing
            for bad in ['{"type":"move","dx":2}', '{"type":"move","dx":"1"}', "not json",
                        '["move"]', '{"type":"fly"}', '{"type":"chat","text":""}']:
                e = await bob.ask(bad, "error")
                assert e["error"], bad
            await bob.ws.send(b"\x01\x02")
            assert "binary" in (await bob.type("error"))["error"]
            st = await bob.ask({"type": "state"}, "state")
            assert (st["players"]["bob"]["x"], st["players"]["bob"]["y"]) == (1, 0)

            # --- team chat reaches the team (the sender too), nobody else
            await ada.ws.send(json.dumps({"type": "chat", "text": "reds to the centre"}))
            for p in (ada, bob):
                c = await p.type("chat")
                assert c == {"type": "chat", "from": "ada", "team": "red", "text": "reds to the centre"}
            await cyd.ws.send(json.dumps({"type": "chat", "text": "blue only"}))
            assert (await cyd.type("chat"))["from"] == "cyd"
            # Each asks for the state after the chat was delivered: a chat sent
            # to them would have arrived before that answer.
            await cyd.ask({"type": "state"}, "state")
            await ada.ask({"type": "state"}, "state")
            await bob.ask({"type": "state"}, "state")
            assert [c["from"] for c in cyd.got("chat")] == ["cyd"]
            assert [c["from"] for c in ada.got("chat")] == ["ada"]
            assert [c["from"] for c in bob.got("chat")] == ["ada"]

            # --- the auto-response
            await ada.ws.send("ping")
            assert await ada.next(lambda m: m == "pong") == "pong"

            # --- ticks arrive for everyone with n counting up
            t1 = await ada.type("tick")
            t2 = await ada.type("tick")
            assert t2["n"] == t1["n"] + 1
            assert set(t2["scores"]) == {"ada", "bob", "cyd"}
            assert (await cyd.type("tick"))["n"] >= t1["n"]

            # --- standing on the goal scores a point per tick
            for _ in range(9):
                m = await ada.move(1, 1)
            assert (m["x"], m["y"]) == (9, 9)
            # Every tick ada receives after her move was made with her on the goal.
            a = await ada.type("tick")
            b = await ada.type("tick")
            assert a["scores"]["ada"] >= 1
            assert b["n"] == a["n"] + 1 and b["scores"]["ada"] == a["scores"]["ada"] + 1
            assert b["scores"]["bob"] == 0 and b["scores"]["cyd"] == 0

            # --- the HTTP scoreboard matches (ada steps off the goal first, so
            # the scores hold still while we compare)
            await ada.move(-1, -1)
            st = await ada.ask({"type": "state"}, "state")
            sb = await asyncio.to_thread(get_json, f"{game.http}/game/{ROOM}")
            assert sb["room"] == ROOM and sb["tick"] >= st["tick"]
            assert {k: v["score"] for k, v in sb["players"].items()} == \
                {k: v["score"] for k, v in st["players"].items()}
            assert all(v["online"] for v in sb["players"].values())
            assert sb["teams"] == {"red": st["players"]["ada"]["score"], "blue": 0}

            # --- SIGKILL of the room's shard: clients stay connected, and the
            # tick goes on from the stored number with the stored scores.
            await ada.move(1, 1)
            before = await ada.type("tick")
            before = await ada.next(lambda m: isinstance(m, dict) and m.get("type") == "tick"
                                    and m["scores"]["ada"] > before["scores"]["ada"])
            pid = game.shard_pids()[owner]
            os.kill(pid, signal.SIGKILL)
            after = await ada.type("tick")
            assert after["n"] > before["n"], (before, after)
            # ada stood on the goal for every tick: one point each, none lost
            # or counted twice across the restart (a tick whose broadcast died
            # with the shard still counts: hence n, not 1, ticks later).
            assert after["scores"]["ada"] - before["scores"]["ada"] == after["n"] - before["n"]
            assert after["scores"]["bob"] == before["scores"]["bob"] == 0
            nxt = await ada.type("tick")
            assert nxt["n"] > after["n"]
            assert nxt["scores"]["ada"] - after["scores"]["ada"] == nxt["n"] - after["n"]
            assert (await cyd.next(lambda m: isinstance(m, dict) and m.get("type") == "tick"
                                   and m["n"] > before["n"]))
            assert game.shard_pids()[owner] != pid
            for p in (ada, bob, cyd):
                assert p.ws.open
            st = await bob.ask({"type": "state"}, "state")
            assert {k: (v["x"], v["y"]) for k, v in st["players"].items()} == \
                {"ada": (9, 9), "bob": (1, 0), "cyd": (19, 19)}
            # Every player's ticks counted up, never back, through the restart.
            for p in (ada, bob, cyd):
                ns = [t["n"] for t in p.got("tick")]
                assert ns == sorted(set(ns)), (p.name, ns)

            # --- leaving is announced
            await cyd.ws.close()
            assert (await ada.type("left"))["name"] == "cyd"
            assert (await bob.type("left"))["name"] == "cyd"
            last = max(t["n"] for t in ada.got("tick"))
            score = [t for t in ada.got("tick") if t["n"] == last][0]["scores"]["ada"]
        return last, score

    last, score = run(go())
    # Everyone left: the room was evicted, and its scoreboard is still served.
    sb = get_json(f"{game.http}/game/{ROOM}")
    assert sb["tick"] >= last
    assert sb["players"]["ada"]["score"] >= score and sb["players"]["bob"]["score"] == 0
    assert not any(v["online"] for v in sb["players"].values())
    log = game.read_log()
    assert f'msg="shard died" shard={owner}' in log
    assert f'msg="object woke" object=game/{ROOM}' in log  # hibernated between ticks


# A --shard-bin for the test below: a shard's first start is the real binary;
# a restart runs it with its socket hidden for 2.5 s, so the gateway cannot
# resume the room's connections before the room's alarm is due.
SLOW_RESUME = """#!/bin/bash
args=("$@"); name=""; rundir=""
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[i]}" = --name ] && name=${args[i+1]}
  [ "${args[i]}" = --run-dir ] && { rundir=${args[i+1]}; args[i+1]=$rundir/hidden; }
done
if [ ! -e "$rundir/.started-$name" ]; then touch "$rundir/.started-$name"; exec "%(shard)s" "$@"; fi
mkdir -p "$rundir/hidden"; rm -f "$rundir/$name.sock"
"%(shard)s" "${args[@]}" & child=$!
trap 'kill -TERM $child' TERM INT
sleep 2.5
ln -s "$rundir/hidden/$name.sock" "$rundir/$name.sock"
wait $child; wait $child
"""


def test_tick_waits_for_connections_resumed_late_after_a_restart(tmp_path):
    """After a restart the tick alarm fires on a room whose connections the
    gateway has not re-opened yet: it must wait for them, not stop."""
    wrapper = tmp_path / "slow-resume-shard.sh"
    wrapper.write_text(SLOW_RESUME % {"shard": SHARD})
    wrapper.chmod(0o755)
    r = Roomd(tmp_path / "r", shards=1, extra=("--module", MODULE, "--shard-bin", str(wrapper)))
    try:
        async def go():
            async with Player(r, "ada", "red") as ada:
                for _ in range(9):
                    await ada.move(1, 1)
                before = await ada.type("tick")
                os.kill(r.shard_pids()["shard-0"], signal.SIGKILL)
                after = await ada.next(lambda m: isinstance(m, dict) and m.get("type") == "tick"
                                       and m["n"] > before["n"])
                assert after["scores"]["ada"] - before["scores"]["ada"] == after["n"] - before["n"]
                nxt = await ada.type("tick")
                assert nxt["n"] == after["n"] + 1
        run(go())
        log = r.read_log()
        restart = log.index('msg="shard started" shard=shard-0', log.index('msg="shard died"'))
        link_up = log.index('msg="shard link up" shard=shard-0', restart)
        # The alarm did fire on the empty room before the connections came back.
        assert 'msg="alarm fired" object=game/arena' in log[restart:link_up]
    finally:
        r.stop()


def test_unknown_room_path_and_method(game):
    sb = get_json(f"{game.http}/game/empty")
    assert sb == {"room": "empty", "tick": 0, "players": {}, "teams": {"red": 0, "blue": 0}}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{game.http}/game/empty/nope", timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(f"{game.http}/game/empty", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
