// Types for roomd's /client.js.

/** A typed message in ws-kit's envelope: {type, meta, payload}. */
export interface MessageSchema<T = unknown> {
  readonly type: string;
  /** Returns false (or throws) for a payload that does not fit. */
  readonly validate: (payload: unknown) => boolean | void;
  /** Phantom field carrying the payload type. */
  readonly __payload?: T;
}

export interface Envelope<T = unknown> {
  type: string;
  meta?: { timestamp?: number; [k: string]: unknown };
  payload: T;
}

/** message("CHAT", p => typeof (p as any).text === "string") */
export function message<T = unknown>(type: string, validate?: (payload: unknown) => boolean | void): MessageSchema<T>;

/** A JSON-RPC error answered by the object. */
export class RpcError extends Error {
  readonly code: number;
  readonly data?: unknown;
}

export interface ClientOptions {
  /** Subprotocols to offer. */
  protocols?: string[];
  /** A JWT (or a function giving one, asked on every connect), sent as the "bearer.<jwt>" subprotocol. */
  token?: string | (() => string | Promise<string>);
  /** Ms of silence before a heartbeat probe (0: none). Default 25000. */
  heartbeat?: number;
  /** Ms to wait for the probe's answer before reconnecting. Default 10000. */
  heartbeatTimeout?: number;
  /** Reconnect backoff: base and cap in ms (full jitter). Defaults 250 and 15000. */
  backoff?: number;
  maxBackoff?: number;
  /** Messages kept while disconnected; sending more throws. Default 256. */
  queue?: number;
  /** Default RPC timeout in ms. Default 10000. */
  timeout?: number;
  /** Reconnect after a lost connection. Default true. */
  reconnect?: boolean;
  /** A WebSocket constructor (default: globalThis.WebSocket). */
  WebSocket?: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export type Data = string | ArrayBuffer | ArrayBufferView | object;

export class Client {
  constructor(url: string, opts?: ClientOptions);
  readonly url: string;
  readonly state: "connecting" | "open" | "closed";
  /** Resolves when the connection is (again) open. */
  readonly ready: Promise<void>;

  on(event: "open" | "reconnect", fn: () => void): () => void;
  on(event: "close", fn: (info: CloseInfo) => void): () => void;
  /** Messages that are neither RPC answers nor typed messages with a handler (JSON parsed when it is JSON). */
  on(event: "message", fn: (data: unknown) => void): () => void;
  on(event: "invalid", fn: (msg: Envelope, err: Error) => void): () => void;
  on(event: "error", fn: (err: unknown) => void): () => void;
  /** A typed message's handler; returns a function that removes it. */
  on<T>(schema: MessageSchema<T>, fn: (payload: T, msg: Envelope<T>) => void): () => void;

  /** Send raw data (objects as JSON), or a typed message (validated) in the envelope. */
  send(data: Data): void;
  send<T>(schema: MessageSchema<T>, payload: T, meta?: Record<string, unknown>): void;

  /** Call a JSON-RPC method; rejects with RpcError, on timeout, or when the connection is lost. */
  call<R = unknown>(method: string, params?: unknown[] | Record<string, unknown>,
                    opts?: { timeout?: number }): Promise<R>;
  /** A streaming method's values; leaving the loop cancels it. Resumed after reconnects. */
  stream<V = unknown>(method: string, params?: unknown[] | Record<string, unknown>): AsyncIterableIterator<V>;

  /** Close for good (no reconnect). */
  close(code?: number, reason?: string): void;
}

export function connect(url: string, opts?: ClientOptions): Client;
