/**
 * The server program's metrics rendering (src/cli/_metrics.ts): the text
 * exposition format's escapes and values, checked by `promtool check
 * metrics` where it is installed, and the worker totals that keep counters
 * from going down when a worker dies and is replaced.
 */

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import {
  escapeHelp,
  escapeLabel,
  formatValue,
  type MetricsSnapshot,
  renderMetrics,
  snapshotOf,
  WorkerTotals,
} from "../src/cli/_metrics.ts";
import type { WorkerCounters } from "../src/workers/pool.ts";
import { serveEcho } from "../src/echo/serve.ts";
import { installed, pipeThrough } from "./_programs.ts";
import { decode, echoOf, encode } from "./_helpers.ts";

const PROMTOOL = installed("promtool");
if (!PROMTOOL) console.warn("promtool is not installed: the metrics are not checked by it");

/** Fails unless `promtool check metrics` accepts `text` without a word (where it is installed). */
async function checkWithPromtool(text: string): Promise<void> {
  if (!PROMTOOL) return;
  const { code, stdout, stderr } = await pipeThrough(
    "promtool",
    ["check", "metrics"],
    encode(text),
  );
  const said = decode(stdout) + stderr;
  assertEquals([code, said.trim()], [0, ""], text);
}

/** The sample lines of an exposition text. */
const samples = (text: string) => text.split("\n").filter((line) => line && line[0] !== "#");

Deno.test("metrics: label values escape backslash, double quote and line feed; help text too", () => {
  assertEquals(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  assertEquals(escapeLabel("127.0.0.1:8888"), "127.0.0.1:8888");
  assertEquals(escapeHelp('say "x"\\\n'), 'say "x"\\\\\\n');
  assertEquals(formatValue(0), "0");
  assertEquals(formatValue(2 ** 53), "9007199254740992");
  assertEquals(formatValue(0.25), "0.25");
  assertEquals(formatValue(NaN), "NaN");
  assertEquals(formatValue(Infinity), "+Inf");
  assertEquals(formatValue(-Infinity), "-Inf");
});

Deno.test("metrics: a rendering with odd label values and every family passes promtool", async () => {
  const figures = new WorkerTotals().snapshot([{
    index: 0,
    restarts: 0,
    servers: [
      {
        transport: "tcp",
        addr: { transport: "tcp", hostname: "::1", port: 80 },
        counters: { connections: 2, accepted: 7, refused: 1, tlsFailed: 3, bytesReceived: 9 },
      },
      {
        transport: "udp",
        addr: { transport: "udp", hostname: "::1", port: 80 },
        counters: { received: 4, sent: 3, sendErrors: 0, drops: { ownAddress: 1 } },
      },
    ],
  }], 0);
  const [tcp, udp] = figures.listeners;
  const snapshot: MetricsSnapshot = {
    listeners: [tcp, { ...tcp, address: 'a"b\\c\nd' }, udp],
    workers: 1,
    restarts: 0,
  };
  const text = renderMetrics(snapshot);
  await checkWithPromtool(text);
  const lines = samples(text);
  assert(lines.includes('echo_open_connections{transport="tcp",address="[::1]:80"} 2'), text);
  assert(
    lines.includes(
      'echo_connections_refused_total{transport="tcp",address="[::1]:80",reason="tls_handshake"} 3',
    ),
    text,
  );
  assert(
    lines.includes('echo_connections_total{transport="tcp",address="a\\"b\\\\c\\nd"} 7'),
    text,
  );
  assert(
    lines.includes(
      'echo_datagrams_dropped_total{transport="udp",address="[::1]:80",reason="own_address"} 1',
    ),
    text,
  );
  // Counters the servers do not have are left out, not rendered as 0.
  assertEquals(lines.filter((line) => line.startsWith("echo_sent_bytes_total")), []);
  // Each family once: its HELP and TYPE, then all its samples.
  const types = text.split("\n").filter((line) => line.startsWith("# TYPE "));
  assertEquals(new Set(types).size, types.length);
});

Deno.test("metrics: failed TLS handshakes are a refusal reason of every TCP listener", async () => {
  await using server = serveEcho({ port: 0 });
  assertEquals(await echoOf(server.addr.port, "hi"), "hi");
  const text = renderMetrics(snapshotOf([server]));
  await checkWithPromtool(text);
  assertStringIncludes(text, `echo_connections_total{transport="tcp",address="127.0.0.1:`);
  assertStringIncludes(text, 'reason="tls_handshake"} 0');
  assertStringIncludes(text, 'reason="limit"} 0');
});

/** One worker with one TCP listener and these counters. */
function worker(index: number, restarts: number, counters: Record<string, number> | null) {
  return {
    index,
    restarts,
    servers: counters === null ? [] : [{
      transport: "tcp" as const,
      addr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 7 },
      counters,
    }],
  } satisfies WorkerCounters;
}

/** The value of `name` for the one listener of a snapshot. */
function valueIn(snapshot: MetricsSnapshot, name: string): number | undefined {
  return snapshot.listeners[0].readings.find((reading) => reading.family.name === name)?.value;
}

Deno.test("metrics: the workers' counters add up and never go down across a worker's restart", () => {
  const totals = new WorkerTotals();
  const scrape = (workers: WorkerCounters[]) => {
    const snapshot = totals.snapshot(workers, 0);
    return [
      valueIn(snapshot, "echo_connections_total"),
      valueIn(snapshot, "echo_open_connections"),
    ];
  };
  assertEquals(
    scrape([
      worker(0, 0, { accepted: 5, connections: 1 }),
      worker(1, 0, { accepted: 3, connections: 2 }),
    ]),
    [8, 3],
  );
  // Worker 1 is down: its count stays, its open connections are gone.
  assertEquals(
    scrape([worker(0, 0, { accepted: 6, connections: 1 }), worker(1, 0, null)]),
    [9, 1],
  );
  // Started again from 0: what it had is carried, once.
  assertEquals(
    scrape([
      worker(0, 0, { accepted: 6, connections: 1 }),
      worker(1, 1, { accepted: 1, connections: 1 }),
    ]),
    [10, 2],
  );
  assertEquals(
    scrape([
      worker(0, 0, { accepted: 6, connections: 0 }),
      worker(1, 1, { accepted: 4, connections: 0 }),
    ]),
    [13, 0],
  );
  // Died and restarted between two scrapes: what the last scrape saw is carried.
  assertEquals(
    scrape([
      worker(0, 0, { accepted: 6, connections: 0 }),
      worker(1, 2, { accepted: 0, connections: 0 }),
    ]),
    [13, 0],
  );
});
