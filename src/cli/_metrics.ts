/**
 * The server program's metrics in the Prometheus text exposition format
 * (version 0.0.4), rendered on each scrape from the servers' counters: per
 * listener (labels `transport` and `address`), added up over the workers
 * when there are some, plus a few figures of the process.
 *
 * Written by hand rather than with a client library (npm `prom-client`):
 * nothing here is recorded as it happens; the figures are snapshots of the
 * counters the servers keep anyway, gathered on scrape (from workers, by
 * message), so what a library would add — registries, metric objects to
 * update, histograms — goes unused, while the format itself is a few lines
 * of text and three escapes.
 *
 * The figures of a worker that died start again from 0 in the worker that
 * replaces it; the counters here carry what was last seen of it, so each
 * counter this module renders never goes down (a scrape-to-scrape view: what
 * the dead worker counted after the last scrape is lost).
 *
 * @module
 */

import { formatAddress } from "../_address.ts";
import type { TcpServer } from "../tcp/server.ts";
import type { UdpServer } from "../udp/server.ts";
import type { WorkerCounters, WorkerPool } from "../workers/pool.ts";
import { VERSION } from "./_version.ts";

/** The media type of the text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One server's counters as they travel: the pool's `WorkerServerCounters` has this shape. */
export interface ServerFigures {
  /** Its transport. */
  transport: "tcp" | "udp";
  /** Where it listens. */
  addr: Deno.NetAddr;
  /** Its counters, with `connections` (open now) for TCP; see {@linkcode countersOf}. */
  counters: Record<string, unknown>;
}

/**
 * A server's counters with, for TCP, the connections open now as
 * `connections` (a `TcpServer` has them apart from its counters). What the
 * program's workers send the pool, and what it reads without workers.
 */
export function countersOf(server: TcpServer | UdpServer): Record<string, unknown> {
  const counters = { ...server.counters } as Record<string, unknown>;
  if ("connections" in server) counters.connections = server.connections;
  return counters;
}

type MetricType = "counter" | "gauge";

/** A metric family: its samples are each listener's, with an optional `reason` label. */
interface Family {
  name: string;
  type: MetricType;
  help: string;
}

/** One value read from a server's counters: the family and the `reason` label, if any. */
interface Reading {
  family: Family;
  reason?: string;
  value: number;
}

const family = (name: string, type: MetricType, help: string): Family => ({ name, type, help });

const OPEN = family("echo_open_connections", "gauge", "TCP connections open now.");
const ACCEPTED = family(
  "echo_connections_total",
  "counter",
  "TCP connections accepted and served.",
);
const REFUSED = family(
  "echo_connections_refused_total",
  "counter",
  "TCP connections closed unanswered, by reason: limit (--max-connections), proxy_header " +
    "(missing, invalid or late PROXY header), untrusted (not from --proxy-from), tls_handshake.",
);
const IDLE = family(
  "echo_connections_closed_idle_total",
  "counter",
  "TCP connections closed for being quiet longer than --idle-timeout.",
);
const RECEIVED_BYTES = family(
  "echo_received_bytes_total",
  "counter",
  "Bytes read from TCP connections.",
);
const SENT_BYTES = family("echo_sent_bytes_total", "counter", "Bytes written to TCP connections.");
const BUFFERED = family(
  "echo_buffered_bytes",
  "gauge",
  "Bytes the TCP connections hold now against --max-buffered.",
);
const PAUSES = family(
  "echo_budget_pauses_total",
  "counter",
  "Times a TCP connection stopped reading because --max-buffered was reached.",
);
const DATAGRAMS_IN = family(
  "echo_datagrams_received_total",
  "counter",
  "UDP datagrams received, dropped ones included.",
);
const DATAGRAMS_OUT = family("echo_datagrams_sent_total", "counter", "UDP datagrams sent.");
const DROPPED = family(
  "echo_datagrams_dropped_total",
  "counter",
  "UDP datagrams dropped without an answer, by reason: forbidden_port, own_address, " +
    "rate_limited, overflow, too_large, injected (--drop), amplification (--mode info).",
);
const SEND_ERRORS = family(
  "echo_datagram_send_errors_total",
  "counter",
  "UDP datagrams the kernel refused to send.",
);

/** The listener families, in the order they are rendered. */
const LISTENER_FAMILIES: readonly Family[] = [
  OPEN,
  ACCEPTED,
  REFUSED,
  IDLE,
  RECEIVED_BYTES,
  SENT_BYTES,
  BUFFERED,
  PAUSES,
  DATAGRAMS_IN,
  DATAGRAMS_OUT,
  DROPPED,
  SEND_ERRORS,
];

/** TCP counters behind the `reason` label of {@linkcode REFUSED}. */
const REFUSED_REASONS: readonly [string, string][] = [
  ["refused", "limit"],
  ["proxyRefused", "proxy_header"],
  ["untrusted", "untrusted"],
  ["tlsFailed", "tls_handshake"],
];

/** The values of one server's counters; those it does not have are left out. */
function readingsOf({ transport, counters }: ServerFigures): Reading[] {
  const readings: Reading[] = [];
  const read = (family: Family, value: unknown, reason?: string) => {
    if (typeof value === "number" && Number.isFinite(value)) {
      readings.push(reason === undefined ? { family, value } : { family, reason, value });
    }
  };
  if (transport === "tcp") {
    read(OPEN, counters.connections);
    read(ACCEPTED, counters.accepted);
    for (const [key, reason] of REFUSED_REASONS) read(REFUSED, counters[key], reason);
    read(IDLE, counters.closedIdle);
    read(RECEIVED_BYTES, counters.bytesReceived);
    read(SENT_BYTES, counters.bytesSent);
    read(BUFFERED, counters.buffered);
    read(PAUSES, counters.budgetPauses);
  } else {
    read(DATAGRAMS_IN, counters.received);
    read(DATAGRAMS_OUT, counters.sent);
    const drops = counters.drops;
    if (typeof drops === "object" && drops !== null) {
      for (const [key, value] of Object.entries(drops)) read(DROPPED, value, snakeCase(key));
    }
    read(SEND_ERRORS, counters.sendErrors);
  }
  return readings;
}

/** `forbiddenPort` → `forbidden_port`. */
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** A series of a listener: its family and `reason`, as a map key. */
const keyOf = (reading: Reading) => `${reading.family.name}\t${reading.reason ?? ""}`;

/** One listener's values, added up over the workers, by series. */
export interface ListenerTotals {
  /** Its transport. */
  transport: "tcp" | "udp";
  /** Where it listens, as `host:port`. */
  address: string;
  /** Its readings, one per series. */
  readings: Reading[];
}

/** What a scrape renders. */
export interface MetricsSnapshot {
  /** Each listener's totals, in the startup lines' order. */
  listeners: ListenerTotals[];
  /** Web Workers serving: 0 when the main thread serves. */
  workers: number;
  /** Workers that died and were started again. */
  restarts: number;
}

/** A snapshot of the listeners a thread runs itself (no workers). */
export function snapshotOf(servers: readonly (TcpServer | UdpServer)[]): MetricsSnapshot {
  return {
    listeners: servers.map((server) =>
      totalsOf([{
        transport: server.addr.transport,
        addr: server.addr,
        counters: countersOf(server),
      }])
    ),
    workers: 0,
    restarts: 0,
  };
}

/** The readings of `servers` (one listener's, one per worker) added up. */
function totalsOf(
  servers: readonly ServerFigures[],
  carried?: ReadonlyMap<string, number>,
): ListenerTotals {
  const sums = new Map<string, Reading>();
  for (const server of servers) {
    for (const reading of readingsOf(server)) {
      const key = keyOf(reading);
      const sum = sums.get(key);
      if (sum === undefined) sums.set(key, { ...reading });
      else sum.value += reading.value;
    }
  }
  for (const [key, value] of carried ?? []) {
    const sum = sums.get(key);
    if (sum !== undefined) sum.value += value;
  }
  const { transport, addr } = servers[0];
  return { transport, address: formatAddress(addr), readings: [...sums.values()] };
}

/** What was last seen of one worker, to carry its counters over its restarts. */
interface WorkerState {
  restarts: number;
  /** Its servers' figures at the last scrape that had them. */
  last: ServerFigures[];
  /** Per listener: the counters of its earlier lives, by series. */
  carried: Map<string, number>[];
}

/**
 * Adds up the counters of a pool's workers, listener by listener, keeping
 * each counter from going down when a worker dies and is replaced (see the
 * module documentation).
 */
export class WorkerTotals {
  readonly #workers = new Map<number, WorkerState>();

  /** The snapshot of `workers` (from `WorkerPool.counters()`), `restarts` the pool's count. */
  snapshot(workers: readonly WorkerCounters[], restarts: number): MetricsSnapshot {
    const listeners: ServerFigures[][] = [];
    const carried: Map<string, number>[] = [];
    for (const worker of workers) {
      const state = this.#stateOf(worker);
      // A worker that is down counts what it had; its gauges (open connections) are gone.
      const servers = worker.servers.length > 0 ? worker.servers : state.last.map(countersOnly);
      servers.forEach((server, i) => (listeners[i] ??= []).push(server));
      state.carried.forEach((values, i) => {
        const into = carried[i] ??= new Map();
        for (const [key, value] of values) into.set(key, (into.get(key) ?? 0) + value);
      });
    }
    return {
      listeners: listeners.map((servers, i) => totalsOf(servers, carried[i])),
      workers: workers.length,
      restarts,
    };
  }

  /** The state of `worker`, updated: on a restart, what it had counted is carried. */
  #stateOf(worker: WorkerCounters): WorkerState {
    let state = this.#workers.get(worker.index);
    if (state === undefined) {
      state = { restarts: worker.restarts, last: [], carried: [] };
      this.#workers.set(worker.index, state);
    }
    if (worker.restarts !== state.restarts) {
      state.last.forEach((server, i) => {
        const into = state.carried[i] ??= new Map();
        for (const reading of readingsOf(server)) {
          if (reading.family.type !== "counter") continue;
          const key = keyOf(reading);
          into.set(key, (into.get(key) ?? 0) + reading.value);
        }
      });
      state.last = [];
      state.restarts = worker.restarts;
    }
    if (worker.servers.length > 0) state.last = worker.servers;
    return state;
  }
}

/** A server's figures without its gauges (for a worker that is down). */
function countersOnly(server: ServerFigures): ServerFigures {
  const { connections: _open, buffered: _buffered, ...counters } = server.counters;
  return { ...server, counters };
}

/** Reads a pool's counters on each call, added up by a {@linkcode WorkerTotals}. */
export function poolSnapshots(pool: WorkerPool): () => Promise<MetricsSnapshot> {
  const totals = new WorkerTotals();
  return async () => totals.snapshot(await pool.counters(), pool.restarts);
}

/** The process's own figures, rendered after the listeners'. */
function processFamilies(snapshot: MetricsSnapshot): string[] {
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number, labels = "") => {
    lines.push(...header(family(name, "gauge", help)), `${name}${labels} ${formatValue(value)}`);
  };
  const deno = Deno.version.deno;
  gauge(
    "echo_build_info",
    "The version of @x/echo and of Deno serving, as labels; the value is 1.",
    1,
    `{version="${escapeLabel(VERSION)}",deno="${escapeLabel(deno)}"}`,
  );
  gauge(
    "echo_workers",
    "Web Workers serving (--workers); 0: the main thread serves.",
    snapshot.workers,
  );
  lines.push(
    ...header(family(
      "echo_worker_restarts_total",
      "counter",
      "Workers that died and were started again.",
    )),
    `echo_worker_restarts_total ${formatValue(snapshot.restarts)}`,
  );
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", Deno.memoryUsage().rss);
  gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch in seconds.",
    Math.round(performance.timeOrigin) / 1000,
  );
  const fds = openDescriptors();
  if (fds !== null) gauge("process_open_fds", "Number of open file descriptors.", fds);
  return lines;
}

/** The descriptors open in this process (Linux's /proc), or `null` where that cannot be read. */
function openDescriptors(): number | null {
  try {
    let count = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
    return count - 1; // the directory being read
  } catch {
    return null;
  }
}

/** `# HELP` and `# TYPE` of a family. */
function header({ name, type, help }: Family): string[] {
  return [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
}

/**
 * The exposition text of `snapshot`: the listener families that have
 * samples, each with its `# HELP` and `# TYPE` lines, then the process's.
 */
export function renderMetrics(snapshot: MetricsSnapshot): string {
  const lines: string[] = [];
  for (const family of LISTENER_FAMILIES) {
    const samples: string[] = [];
    for (const { transport, address, readings } of snapshot.listeners) {
      const labels = `transport="${escapeLabel(transport)}",address="${escapeLabel(address)}"`;
      for (const reading of readings) {
        if (reading.family !== family) continue;
        const reason = reading.reason === undefined
          ? ""
          : `,reason="${escapeLabel(reading.reason)}"`;
        samples.push(`${family.name}{${labels}${reason}} ${formatValue(reading.value)}`);
      }
    }
    if (samples.length > 0) lines.push(...header(family), ...samples);
  }
  lines.push(...processFamilies(snapshot));
  return lines.join("\n") + "\n";
}

/** A label value escaped as the format says: backslash, double quote and line feed. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** `# HELP` text escaped as the format says: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** A sample value: a number as Go's ParseFloat reads it, `NaN`, `+Inf` or `-Inf`. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
