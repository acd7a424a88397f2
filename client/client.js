// roomd client: one object's WebSocket with reconnects, typed messages
// (ws-kit's {type, meta, payload} envelope), JSON-RPC calls and streams.
// An ES module without dependencies; browsers and Node >= 20 (global
// WebSocket: node --experimental-websocket). Types: /client.d.ts.

const HB_REQ = '{"jsonrpc":"2.0","id":"hb","method":"rpc.ping"}';

export class RpcError extends Error {
  constructor(e) {
    super(e.message);
    this.name = "RpcError";
    this.code = e.code;
    this.data = e.data;
  }
}

// A typed message: message("CHAT", p => typeof p.text === "string").
export function message(type, validate) {
  return { type, validate: validate || (() => true) };
}

function check(schema, payload) {
  let ok;
  try {
    ok = schema.validate(payload);
  } catch (e) {
    ok = false;
  }
  if (ok === false) throw new TypeError(`roomd: invalid ${schema.type} payload`);
}

export class Client {
  constructor(url, opts = {}) {
    this.url = url;
    this.o = Object.assign({
      protocols: [], heartbeat: 25000, heartbeatTimeout: 10000, backoff: 250, maxBackoff: 15000,
      queue: 256, timeout: 10000, reconnect: true,
    }, opts);
    this.WS = opts.WebSocket || globalThis.WebSocket;
    if (!this.WS) throw new Error("roomd: no WebSocket (Node: run with --experimental-websocket)");
    this.state = "connecting"; // connecting | open | closed
    this.attempt = 0;
    this.seq = 0;
    this.q = [];
    this.calls = new Map();
    this.streams = new Map();
    this.ev = new Map();
    this.typed = new Map();
    this.opened = null;
    this.ready = new Promise((res) => (this.opened = res));
    this.open();
  }

  // --- events: open, close, reconnect, message, invalid, error ---------------
  on(what, fn) {
    if (typeof what === "object") {
      const l = this.typed.get(what.type) || [];
      l.push([what, fn]);
      this.typed.set(what.type, l);
      return () => this.typed.set(what.type, (this.typed.get(what.type) || []).filter((x) => x[1] !== fn));
    }
    const l = this.ev.get(what) || [];
    l.push(fn);
    this.ev.set(what, l);
    return () => this.ev.set(what, (this.ev.get(what) || []).filter((f) => f !== fn));
  }

  emit(what, ...a) {
    for (const f of this.ev.get(what) || []) {
      try {
        f(...a);
      } catch (e) {
        if (what !== "error") this.emit("error", e);
      }
    }
  }

  // --- the connection ----------------------------------------------------------
  async open() {
    let protos = [...this.o.protocols];
    let tok = this.o.token;
    if (typeof tok === "function") tok = await tok();
    if (tok) protos.push("bearer." + tok);
    if (this.state === "closed") return;
    const ws = (this.ws = new this.WS(this.url, protos));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      const again = this.attempt > 0;
      this.attempt = 0;
      this.state = "open";
      this.beat();
      // Streams the client still iterates resume on the new connection.
      for (const [id, s] of this.streams) this.raw({ jsonrpc: "2.0", id, method: s.m, params: s.p });
      const q = this.q;
      this.q = [];
      for (const m of q) ws.send(m);
      this.opened();
      this.emit(again ? "reconnect" : "open");
    };
    // Browsers follow an error with close; Node's WebSocket may not (a
    // refused connection): whichever comes first ends this socket, once.
    let gone = false;
    const end = (code, reason) => gone || ((gone = true), this.lost(code, reason));
    ws.onmessage = (e) => gone || this.recv(e.data);
    ws.onclose = (e) => end(e.code, e.reason);
    ws.onerror = () => setTimeout(() => ws.readyState !== 1 && end(1006, ""), 0);
    // A dead link may never finish a close handshake: give up on it at once.
    this.kill = (code, reason) => {
      try {
        ws.close(code, reason);
      } catch (e) {}
      end(code, reason);
    };
  }

  lost(code, reason) {
    clearTimeout(this.hb);
    clearTimeout(this.hbDead);
    const was = this.state;
    if (was !== "closed") this.state = "connecting";
    // The answer to an in-flight call is lost with the connection: the
    // call may or may not have run, so it fails rather than being resent.
    for (const [, c] of this.calls) c.fail(new Error(`roomd: connection lost (${code})`));
    this.calls.clear();
    this.emit("close", { code, reason });
    if (was === "closed" || !this.o.reconnect) {
      this.state = "closed";
      for (const [, s] of this.streams) s.end(new Error("roomd: closed"));
      this.streams.clear();
      return;
    }
    this.ready = new Promise((res) => (this.opened = res));
    // Exponential backoff with full jitter: uniform in [0, min(max, base * 2^n)].
    const cap = Math.min(this.o.maxBackoff, this.o.backoff * 2 ** Math.min(this.attempt++, 16));
    setTimeout(() => this.open(), Math.random() * cap);
  }

  // Heartbeat: the gateway itself answers HB_REQ (no object is woken). A
  // connection that stays silent past heartbeatTimeout is treated as dead.
  beat() {
    clearTimeout(this.hb);
    if (!this.o.heartbeat) return;
    this.hb = setTimeout(() => {
      if (this.state !== "open") return;
      this.ws.send(HB_REQ);
      this.hbDead = setTimeout(() => this.kill(4000, "heartbeat timeout"), this.o.heartbeatTimeout);
    }, this.o.heartbeat);
  }

  close(code = 1000, reason = "") {
    this.state = "closed";
    clearTimeout(this.hb);
    clearTimeout(this.hbDead);
    if (this.ws) this.ws.close(code, reason);
  }

  // --- sending -----------------------------------------------------------------
  // A string or ArrayBuffer goes as is, an object as JSON; while disconnected
  // it waits in a bounded queue.
  send(data, payload, meta) {
    if (data && typeof data === "object" && typeof data.type === "string" && data.validate) {
      check(data, payload);
      data = { type: data.type, meta: Object.assign({ timestamp: Date.now() }, meta), payload };
    }
    this.raw(data);
  }

  raw(data) {
    if (typeof data === "object" && !(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data))
      data = JSON.stringify(data);
    if (this.state === "open") return this.ws.send(data);
    if (this.state === "closed") throw new Error("roomd: client is closed");
    if (this.q.length >= this.o.queue) throw new Error(`roomd: send queue full (${this.o.queue})`);
    this.q.push(data);
  }

  // --- receiving ---------------------------------------------------------------
  recv(data) {
    this.beat();
    clearTimeout(this.hbDead);
    let m;
    if (typeof data === "string" && (data[0] === "{" || data[0] === "[")) {
      try {
        m = JSON.parse(data);
      } catch (e) {}
    }
    if (m && m.jsonrpc === "2.0") {
      if (m.id === "hb") return;
      if (m.method === "rpc.stream" && m.params) {
        const s = this.streams.get(m.params.id);
        if (s) s.push(m.params.value);
        return;
      }
      const c = this.calls.get(m.id);
      if (c) {
        this.calls.delete(m.id);
        return "error" in m ? c.fail(new RpcError(m.error)) : c.ok(m.result);
      }
      const s = this.streams.get(m.id);
      if (s) {
        this.streams.delete(m.id);
        return s.end("error" in m && m.error.code !== -32800 ? new RpcError(m.error) : null, m.result);
      }
    }
    if (m && typeof m.type === "string" && (this.typed.get(m.type) || []).length) {
      for (const [schema, fn] of this.typed.get(m.type)) {
        try {
          check(schema, m.payload);
        } catch (e) {
          this.emit("invalid", m, e);
          continue;
        }
        try {
          fn(m.payload, m);
        } catch (e) {
          this.emit("error", e);
        }
      }
      return;
    }
    this.emit("message", m !== undefined ? m : data);
  }

  // --- RPC -------------------------------------------------------------------------
  call(method, params = [], { timeout = this.o.timeout } = {}) {
    const id = ++this.seq;
    return new Promise((ok, fail) => {
      const t = setTimeout(() => {
        this.calls.delete(id);
        fail(new Error(`roomd: ${method} timed out after ${timeout} ms`));
      }, timeout);
      this.calls.set(id, { ok: (v) => (clearTimeout(t), ok(v)), fail: (e) => (clearTimeout(t), fail(e)) });
      try {
        this.raw({ jsonrpc: "2.0", id, method, params });
      } catch (e) {
        this.calls.delete(id);
        clearTimeout(t);
        fail(e);
      }
    });
  }

  // An async iterator over a streaming method's values; leaving the loop
  // (break, return, throw) cancels the stream on the server.
  stream(method, params = []) {
    const id = "s" + ++this.seq;
    const buf = [];
    let wake = null, done = false, err = null, result;
    const s = {
      m: method, p: params,
      push: (v) => (buf.push(v), wake && wake()),
      end: (e, r) => ((done = true), (err = e), (result = r), wake && wake()),
    };
    if (this.state === "closed") throw new Error("roomd: client is closed");
    this.streams.set(id, s);
    // Sent now when open; otherwise by the open handler, like every stream.
    if (this.state === "open") this.raw({ jsonrpc: "2.0", id, method, params });
    const it = {
      next: async () => {
        while (!buf.length && !done) await new Promise((r) => (wake = r));
        wake = null;
        if (buf.length) return { value: buf.shift(), done: false };
        if (err) throw err;
        return { value: result, done: true };
      },
      return: async (v) => {
        if (!done && this.streams.delete(id) && this.state === "open")
          this.raw({ jsonrpc: "2.0", method: "rpc.cancel", params: [id] });
        done = true;
        buf.length = 0;
        return { value: v, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}

export function connect(url, opts) {
  return new Client(url, opts);
}
