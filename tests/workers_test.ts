/**
 * The worker pool: servers on every core, each worker with its own
 * `reusePort` listener, one that dies started again with its descriptors
 * closed, counters gathered, and a drain that ends them all.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { startWorkers, type WorkerPool } from "../src/workers/mod.ts";
import {
  decode,
  dial,
  encode,
  openIoDescriptors,
  outcome,
  readExactly,
  waitFor,
} from "./_helpers.ts";

const MODULE = new URL("./fixtures/echo_worker.ts", import.meta.url);

/** Worker 0 takes a free port; the others join it there. */
const onOnePort = (_index: number, first: readonly { addr: Deno.NetAddr }[] | null) => ({
  port: first?.[0].addr.port ?? 0,
});

/**
 * Deno keeps a few descriptors of its own for the workers a process has
 * had (4 after the first, 2 more after the second pool here), for as long as
 * the process runs: let them be opened before counting ours. A terminated
 * worker's thread gives its own back when it has wound down, which on a busy
 * machine takes a while: the counts are waited for, with a generous bound.
 */
let warmedUp = false;
async function descriptorsBefore(): Promise<number> {
  for (let i = 0; !warmedUp && i < 2; i++) {
    await (await startWorkers(MODULE, { count: 2, data: onOnePort })).shutdown();
  }
  warmedUp = true;
  return openIoDescriptors();
}

/** The sockets this process holds. */
function openSockets(): number {
  let count = 0;
  for (const { name } of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${name}`).startsWith("socket:")) count++;
    } catch {
      // Closed since the directory was read.
    }
  }
  return count;
}

/** The listening TCP sockets on `port`, from the kernel's table (each worker's is one). */
function listenersOn(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(file).split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 3 && fields[1].endsWith(`:${hex}`) && fields[3] === "0A") count++;
    }
  }
  return count;
}

/** Asks a new connection which worker serves it. */
async function whoServes(port: number): Promise<string> {
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  try {
    await conn.write(encode("who\n"));
    return decode(await readExactly(conn, "worker 0\n".length)).trim();
  } finally {
    conn.close();
  }
}

/** A connection that worker `name` serves, found by trying. */
async function connectionServedBy(port: number, name: string): Promise<Deno.TcpConn> {
  for (let i = 0; i < 200; i++) {
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
    await conn.write(encode("who\n"));
    if (decode(await readExactly(conn, name.length + 1)) === `${name}\n`) return conn;
    conn.close();
  }
  throw new Error(`no connection reached ${name}`);
}

async function whoServesMany(port: number, count: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) seen.add(await whoServes(port));
  return seen;
}

Deno.test("two workers listen on one port and share its connections", async () => {
  const before = await descriptorsBefore();
  const pool: WorkerPool = await startWorkers(MODULE, { count: 2, data: onOnePort });
  try {
    assertEquals(pool.size, 2);
    const { port } = pool.listeners[0].addr;
    assertEquals(listenersOn(port), 2);
    // The kernel hashes each connection's addresses: 40 connections all on one worker
    // would happen once in 2^39.
    assertEquals(await whoServesMany(port, 40), new Set(["worker 0", "worker 1"]));
    const counters = await pool.counters();
    const accepted = counters.map((w) => Number(w.servers[0].counters.accepted));
    assertEquals(accepted.reduce((a, b) => a + b), 40);
    assert(accepted.every((n) => n > 0), `each worker accepted some: ${accepted}`);
  } finally {
    const final = await pool.shutdown();
    assertEquals(final.length, 2);
    assertEquals(
      final.reduce((sum, w) => sum + Number(w.servers[0].counters.accepted), 0),
      40,
    );
    // Workers that ended close their pollers: nothing of theirs is left open.
    await waitFor(() => openIoDescriptors() <= before, "the descriptors to be released", 15_000);
  }
});

Deno.test("a worker that dies is started again, its descriptors closed", async () => {
  await descriptorsBefore();
  const before = openSockets();
  const pool = await startWorkers(MODULE, { count: 2, data: onOnePort, restartDelay: 10 });
  const { port } = pool.listeners[0].addr;
  // A connection served by worker 1, which it then kills.
  const victim = await connectionServedBy(port, "worker 1");
  await victim.write(encode("crash\n"));
  // The dead worker's connection is closed, not left hanging.
  const end = await outcome(victim.read(new Uint8Array(16)), 5_000);
  assert(
    end === "resolved" || end.includes("ConnectionReset"),
    `the dead worker's connection ended: ${end}`,
  );
  victim.close();
  await waitFor(() => pool.restarts === 1, "the restart");
  await waitFor(() => listenersOn(port) === 2, "two listeners again", 5_000);
  // Every new connection is answered: none goes to a listener nobody accepts on.
  const seen = await whoServesMany(port, 40);
  assertEquals(seen, new Set(["worker 0", "worker 1"]));
  const final = await pool.shutdown();
  assertEquals(final[1].restarts, 1);
  assertEquals(listenersOn(port), 0);
  // Its sockets (its listener, the connection it served) were closed. (Its poller's epoll and
  // eventfd are closed too, but a terminated worker's thread keeps some of Deno's own for a
  // while, which are not told apart from ours here.)
  await waitFor(() => openSockets() <= before, "the sockets to be released", 15_000);
});

Deno.test("a worker that cannot listen fails the start, and no worker is left", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = taken.addr;
    const before = await descriptorsBefore();
    await assertRejects(
      () => startWorkers(MODULE, { count: 2, data: { port } }),
      Deno.errors.AddrInUse,
      `127.0.0.1:${port}`,
    );
    assertEquals(listenersOn(port), 1);
    // The worker that failed closed its poller: nothing of it is left open.
    await waitFor(() => openIoDescriptors() <= before, "the descriptors to be released", 15_000);
  } finally {
    taken.close();
  }
});

Deno.test("a worker that cannot listen after worker 0 did: worker 0 drains, and nothing is left", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const before = await descriptorsBefore();
    let port0 = 0;
    await assertRejects(
      () =>
        startWorkers(MODULE, {
          count: 2,
          data: (index, first) => {
            if (first !== null) port0 = first[0].addr.port;
            return { port: index === 0 ? 0 : taken.addr.port };
          },
        }),
      Deno.errors.AddrInUse,
    );
    assert(port0 > 0, "worker 0 listened first");
    assertEquals(listenersOn(port0), 0);
    await waitFor(() => openIoDescriptors() <= before, "the descriptors to be released", 15_000);
  } finally {
    taken.close();
  }
});

Deno.test("a failed worker that still runs keeps its descriptors until its thread stops", async () => {
  await descriptorsBefore();
  const before = openSockets();
  const dir = await Deno.makeTempDir();
  const mark = (name: string) => {
    try {
      return Deno.readTextFileSync(`${dir}/${name}`);
    } catch {
      return null;
    }
  };
  try {
    // It fails, and runs microtasks for 3 s more, which terminate() does not stop.
    await assertRejects(
      () =>
        startWorkers(new URL("./fixtures/stubborn_echo_worker.ts", import.meta.url), {
          count: 1,
          data: { dir },
        }),
      Error,
      "fails on purpose",
    );
    assert(mark("ended") !== null, "the start failed while the worker it ended still ran");
    assertEquals(mark("closed"), null, "descriptors were closed under the running worker");
    // Then its listener was closed.
    await waitFor(() => openSockets() <= before, "the sockets to be released", 15_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a worker that runs on past the time allowed keeps its descriptors, with a warning", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // In a process of its own: the descriptors given up on stay open until it ends.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./fixtures/pool_gives_up.ts", import.meta.url).pathname, dir],
      signal: AbortSignal.timeout(60_000),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    const result = JSON.parse(new TextDecoder().decode(stdout));
    assert(result.error.includes("fails on purpose"), result.error);
    // The start gave up after the 300 ms allowed (the warning says so), while the worker still
    // ran (3 s).
    assert(result.ranOn, "the start waited for the worker to stop");
    assertEquals(result.closedUnderIt, false, "descriptors were closed under the running worker");
    // Its descriptors (the epoll instance, its listener, ...) are left open: the pool gave up.
    assert(result.watched >= 2, `${result.watched} descriptors watched`);
    assertEquals(result.leftOpen, result.watched);
    assertEquals(result.warnings, [{
      message: "Worker {index} still runs {seconds} s after it was ended (its JavaScript never " +
        "returns to its event loop): its descriptors stay open",
      index: 0,
      seconds: 0.3,
    }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startWorkers names a bad count", async () => {
  await assertRejects(() => startWorkers(MODULE, { count: 0 }), RangeError, "count 0");
  await assertRejects(
    () => startWorkers(MODULE, { count: 1.5 as number }),
    RangeError,
    "count 1.5",
  );
});
