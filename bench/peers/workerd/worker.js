// roomd benchmark peer: the seeds' Durable Objects examples on workerd, the
// open-source runtime of Cloudflare Workers and Durable Objects.
//
//   /echo/<name>      WebSocketServer: the "Build a WebSocket server" seed, as
//                     written (standard WebSocket API: accept() and a
//                     'message' listener that replies "[Durable Object]: "+msg)
//   /echo-hib/<name>  HibernatingEcho: the same echo on the WebSocket
//                     Hibernation API (state.acceptWebSocket, webSocketMessage)
//   /chat/<name>      ChatRoom: relays each message to every OTHER member, on
//                     the Hibernation API (state.getWebSockets())
//   /counter/<name>   Counter: the Shared Exports Counter with durable storage;
//                     over a WebSocket {"op":"increment"[,"by":N]} and
//                     {"op":"get"} answer {"value":N} (roomd's counter class
//                     protocol); GET answers the value as text
//
// Unlike the seed's Worker, which always uses the object named "foo", the
// Worker routes /<class>/<name> to the object named <name>, as roomd does.

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const m = /^\/(echo|echo-hib|chat|counter)\/([^/]{1,256})(\/.*)?$/.exec(url.pathname);
    if (!m) return new Response("not found\n", { status: 404 });
    const [, cls, name, rest] = m;
    const ns = { echo: env.ECHO, "echo-hib": env.ECHO_HIB, chat: env.CHAT, counter: env.COUNTER }[cls];
    const stub = ns.get(ns.idFromName(decodeURIComponent(name)));
    if (cls === "echo") {
      // The seed's object answers its WebSocket on a URL ending in
      // "/websocket"; /echo/<name>/getCurrentConnections reaches its counter.
      url.pathname = rest === "/getCurrentConnections" ? rest : "/websocket";
      return stub.fetch(new Request(url, request));
    }
    return stub.fetch(request);
  },
};

function expectUpgrade(request) {
  const upgradeHeader = request.headers.get("Upgrade");
  if (!upgradeHeader || upgradeHeader !== "websocket") {
    return new Response("Durable Object expected Upgrade: websocket", { status: 426 });
  }
  return null;
}

// ---- the "Build a WebSocket server" seed, unchanged in behaviour ----------
export class WebSocketServer {
  constructor(state, env) {
    this.state = state;
    this.currentlyConnectedWebSockets = 0;
  }

  async fetch(request) {
    if (request.url.endsWith("/websocket")) {
      const refused = expectUpgrade(request);
      if (refused) return refused;
      const webSocketPair = new WebSocketPair();
      const [client, server] = Object.values(webSocketPair);
      server.accept();
      this.currentlyConnectedWebSockets += 1;
      server.addEventListener("message", (event) => {
        server.send(`[Durable Object]: ${event.data}`);
      });
      server.addEventListener("close", (cls) => {
        this.currentlyConnectedWebSockets -= 1;
        server.close(cls.code, "Durable Object is closing WebSocket");
      });
      return new Response(null, { status: 101, webSocket: client });
    } else if (request.url.endsWith("/getCurrentConnections")) {
      if (this.currentlyConnectedWebSockets == 1) {
        return new Response(`There is ${this.currentlyConnectedWebSockets} WebSocket client connected to this Durable Object instance.`);
      }
      return new Response(`There are ${this.currentlyConnectedWebSockets} WebSocket clients connected to this Durable Object instance.`);
    }
    return new Response(`
This Durable Object supports the following endpoints:
/websocket
- Creates a WebSocket connection. Any messages sent to it are echoed with a prefix.
/getCurrentConnections
- A regular HTTP GET endpoint that returns the number of currently connected WebSocket clients.
`);
  }
}

// ---- the same echo on the WebSocket Hibernation API ------------------------
// The upgrade both Hibernation API classes answer: the runtime holds the
// socket and calls webSocketMessage/webSocketClose.
function acceptHibernating(state, request) {
  const refused = expectUpgrade(request);
  if (refused) return refused;
  const [client, server] = Object.values(new WebSocketPair());
  state.acceptWebSocket(server);
  return new Response(null, { status: 101, webSocket: client });
}

export class HibernatingEcho {
  constructor(state, env) {
    this.state = state;
  }

  async fetch(request) {
    return acceptHibernating(this.state, request);
  }

  webSocketMessage(ws, message) {
    if (typeof message === "string") {
      ws.send(`[Durable Object]: ${message}`);
    } else {
      const prefix = new TextEncoder().encode("[Durable Object]: ");
      const out = new Uint8Array(prefix.length + message.byteLength);
      out.set(prefix);
      out.set(new Uint8Array(message), prefix.length);
      ws.send(out);
    }
  }

  webSocketClose(ws, code) {
    ws.close(code === 1005 ? 1000 : code, "Durable Object is closing WebSocket");
  }
}

// ---- chat room: relay to every other member (Hibernation API) --------------
export class ChatRoom {
  constructor(state, env) {
    this.state = state;
  }

  async fetch(request) {
    return acceptHibernating(this.state, request);
  }

  webSocketMessage(ws, message) {
    for (const member of this.state.getWebSockets()) {
      if (member !== ws) {
        try {
          member.send(message);
        } catch (e) {
          // a member that is closing: it leaves the room on its own
        }
      }
    }
  }

  webSocketClose(ws, code) {
    ws.close(code === 1005 ? 1000 : code, "Durable Object is closing WebSocket");
  }
}

// ---- the Shared Exports Counter, durable ------------------------------------
// The value lives in the object's storage. A reply is an output of the
// object, so workerd's output gate holds it until the put() it follows is
// durable: an acknowledged increment survives a restart, as in roomd.
export class Counter {
  constructor(state, env) {
    this.state = state;
    this.value = 0;
    state.blockConcurrencyWhile(async () => {
      this.value = (await state.storage.get("value")) ?? 0;
    });
  }

  async fetch(request) {
    if (request.headers.get("Upgrade") !== "websocket") {
      return new Response(`${this.value}\n`);
    }
    const [client, server] = Object.values(new WebSocketPair());
    this.state.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    let req;
    try {
      req = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch (e) {
      ws.send(JSON.stringify({ error: "bad json" }));
      return;
    }
    if (req && req.op === "increment") {
      const by = Number.isSafeInteger(req.by) ? req.by : 1;
      this.value += by;
      this.state.storage.put("value", this.value);
      ws.send(JSON.stringify({ value: this.value }));
    } else if (req && req.op === "get") {
      ws.send(JSON.stringify({ value: this.value }));
    } else {
      ws.send(JSON.stringify({ error: "unknown op" }));
    }
  }

  webSocketClose(ws, code) {
    ws.close(code === 1005 ? 1000 : code, "Durable Object is closing WebSocket");
  }
}
