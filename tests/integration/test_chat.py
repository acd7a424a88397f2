"""chat on ws-kit's envelope: JOIN_ROOM / SEND_MESSAGE in, ROOM:LIST and
ROOM:MESSAGE out, the member list on join and leave, history replayed on
join, clear ERRORs; raw messages keep being relayed as before."""
import asyncio
import json

import websockets


def env(t, **payload):
    return json.dumps({"type": t, "meta": {}, "payload": payload})


async def recv_type(ws, t):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if m["type"] == t:
            return m


def test_ws_kit_chat(roomd):
    async def go():
        url = roomd.ws + "/chat/kit"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            await a.send(env("SEND_MESSAGE", text="too early"))
            e = await recv_type(a, "ERROR")
            assert e["payload"] == {"message": "send JOIN_ROOM before SEND_MESSAGE"}
            await a.send(env("JOIN_ROOM", room="kit", user="ada"))
            lst = await recv_type(a, "ROOM:LIST")
            assert lst["payload"] == {"users": ["ada"]} and isinstance(lst["meta"]["timestamp"], int)
            await b.send(env("JOIN_ROOM", room="kit"))  # no name: the clientId
            lst = await recv_type(a, "ROOM:LIST")
            assert lst["payload"]["users"][0] == "ada" and len(lst["payload"]["users"][1]) == 36
            await recv_type(b, "ROOM:LIST")
            await b.send(env("SEND_MESSAGE", text="hi ada"))
            for ws in (a, b):  # everyone, the sender included
                m = await recv_type(ws, "ROOM:MESSAGE")
                assert m["payload"]["text"] == "hi ada" and m["payload"]["user"] == lst["payload"]["users"][1]
            await a.send(env("SEND_MESSAGE", text="hello"))
            assert (await recv_type(b, "ROOM:MESSAGE"))["payload"] == {"user": "ada", "text": "hello"}
            for bad, why in ((env("JOIN_ROOM", room="other"), 'this connection is room "kit"'),
                             (env("JOIN_ROOM"), "JOIN_ROOM needs payload.room"),
                             (env("SEND_MESSAGE", text=""), "SEND_MESSAGE needs payload.text"),
                             (env("SEND_MESSAGE", text="x" * 5000), "SEND_MESSAGE needs payload.text"),
                             (json.dumps({"type": "SEND_MESSAGE", "payload": 3}), "payload must be an object"),
                             (env("JOIN_ROOM", room="kit", user=""), "payload.user must be")):
                await a.send(bad)
                assert why in (await recv_type(a, "ERROR"))["payload"]["message"]
            # A newcomer gets the history, then the list; a leaver updates it.
            async with websockets.connect(url) as c:
                await c.send(env("JOIN_ROOM", room="kit", user="cy"))
                h1 = await recv_type(c, "ROOM:MESSAGE")
                h2 = await recv_type(c, "ROOM:MESSAGE")
                assert [h1["payload"]["text"], h2["payload"]["text"]] == ["hi ada", "hello"]
                assert (await recv_type(c, "ROOM:LIST"))["payload"]["users"][-1] == "cy"
            lst = await recv_type(a, "ROOM:LIST")  # cy joined
            lst = await recv_type(a, "ROOM:LIST")  # cy left
            assert "cy" not in lst["payload"]["users"] and len(lst["payload"]["users"]) == 2
    asyncio.run(asyncio.wait_for(go(), 60))


def test_raw_messages_are_still_relayed(roomd):
    async def go():
        url = roomd.ws + "/chat/rawmix"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            await a.send("plain")
            await a.send('{"type":"chat.message","text":"json but not ws-kit"}')
            assert await asyncio.wait_for(b.recv(), 10) == "plain"
            assert json.loads(await asyncio.wait_for(b.recv(), 10))["type"] == "chat.message"
    asyncio.run(asyncio.wait_for(go(), 60))
