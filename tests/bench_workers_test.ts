/**
 * `runBench` on several event loops, as a library caller uses it: the
 * workers' latencies land in the histogram passed in, their descriptors are
 * all closed when the run returns (even those of a worker that hung and
 * had to be ended), and options out of range are refused before any worker
 * starts.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { LatencyHistogram, runBench } from "../src/cli/bench.ts";
import { runInWorkers } from "../src/load/_workers.ts";
import { ServerProcess } from "./_programs.ts";
import { decode, encode, openIoDescriptors, readExactly, waitFor, writeAll } from "./_helpers.ts";

for (const transport of ["tcp", "udp"] as const) {
  Deno.test(`runBench on 2 workers (${transport}): one histogram of both, and no descriptor left open`, async () => {
    const flags = transport === "udp" ? ["--udp"] : [];
    await using server = await new ServerProcess([...flags, "--log-level", "warning"]).ready();
    const options = {
      transport,
      hostname: "127.0.0.1",
      port: server.port,
      connections: 4,
      workers: 2,
      size: 100,
      durationMs: 500,
    };
    // The first workers of a process leave what Deno keeps for later ones: a run first.
    await runBench(options);
    const before = openIoDescriptors();
    const latencies = new LatencyHistogram();
    const report = await runBench({ ...options, latencies });
    assertEquals([report.workers, report.errors], [2, 0], JSON.stringify(report));
    assert(report.requests > 0, JSON.stringify(report));
    // Every round trip of both workers, recorded once.
    assertEquals(latencies.count, report.requests);
    // Each worker's sockets, epoll instance and eventfd are closed before it ends. Deno tears
    // a terminated worker's own runtime down on its thread, a moment later: hence the wait.
    await waitFor(
      () => openIoDescriptors() <= before,
      `the descriptors to come back to ${before} (${openIoDescriptors()} now)`,
      5000,
    );
  });
}

/** Whether the stubborn worker left the mark `name` in `dir` (see `fixtures/_keep_running.ts`). */
/** The worker module that runs on after it is ended; its marks go to `ECHO_STUBBORN_DIR`. */
const STUBBORN = new URL("./_stubborn_bench_worker.ts", import.meta.url);

/**
 * Loads the stubborn worker's module once, in a worker ended at once. Under
 * `deno test` a worker's module is type-checked as the worker starts, which
 * on a cold cache (a fresh CI machine) takes longer than the runs below give
 * their worker to start: it was then ended before it ran, and the test
 * failed for want of what it tests.
 */
async function loadStubbornModule(dir: string): Promise<void> {
  const worker = new Worker(STUBBORN, { type: "module" });
  try {
    await waitFor(() => exists(dir, "loaded"), "the stubborn worker's module to load", 60_000);
  } finally {
    worker.terminate();
  }
  await Deno.remove(`${dir}/loaded`);
}

function exists(dir: string, name: string): boolean {
  try {
    Deno.statSync(`${dir}/${name}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * How many descriptors are open once the count holds still: Deno tears the
 * workers of an earlier run down on their threads, a moment after they
 * end, and nothing tells when.
 */
async function settledDescriptorCount(): Promise<number> {
  let count = -1;
  let still = 0;
  await waitFor(
    () => {
      const now = openIoDescriptors();
      still = now === count ? still + 1 : 0;
      count = now;
      return still >= 10;
    },
    "the count of descriptors to hold still",
    5000,
    20,
  );
  return count;
}

Deno.test("a bench worker that never reports is ended, and the sockets it held are closed", async () => {
  await using server = await new ServerProcess(["--log-level", "warning"]).ready();
  const options = { hostname: "127.0.0.1", port: server.port, connections: 6, size: 100 };
  await runBench({ ...options, workers: 2, durationMs: 200 });
  // The main thread's own connection: the workers' descriptors are closed, not this one.
  using mine = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const before = await settledDescriptorCount();
  const running = runInWorkers({ ...options, durationMs: 300 }, 2, [50], {
    module: new URL("./_hung_bench_worker.ts", import.meta.url),
    graceMs: 3000,
  });
  // The workers did open their connections, pollers and eventfds before they were ended.
  let most = before;
  const watching = setInterval(() => most = Math.max(most, openIoDescriptors()), 10);
  const report = await running;
  clearInterval(watching);
  assert(most >= before + 6 + 2 * 2, `at most ${most - before} descriptors more than before`);
  assertEquals(report.errorMessages, [{
    message:
      "Cannot read the report of a bench worker: none came within twice the duration (connecting, then the load) and 3 s more",
    count: 2,
  }]);
  // Each worker held its 3 connections, its epoll instance and its eventfd: all closed, and
  // nothing else.
  await waitFor(
    () => openIoDescriptors() <= before,
    `the descriptors to come back to ${before} (${openIoDescriptors()} now)`,
    5000,
  );
  assertEquals(openIoDescriptors(), before);
  await writeAll(mine, encode("still mine"));
  assertEquals(decode(await readExactly(mine, 10)), "still mine");
});

Deno.test("an ended bench worker that still runs keeps its descriptors until its thread stops", async () => {
  await using server = await new ServerProcess(["--log-level", "warning"]).ready();
  const dir = await Deno.makeTempDir();
  Deno.env.set("ECHO_STUBBORN_DIR", dir);
  try {
    // The first workers of a process leave what Deno keeps for later ones: a run first.
    const options = { hostname: "127.0.0.1", port: server.port, connections: 2, size: 100 };
    await runBench({ ...options, workers: 2, durationMs: 100 });
    const before = await settledDescriptorCount();
    // Ended 1.8 s after it started, part way through the 3 s of microtasks it runs once its
    // 2 connections are open, which terminate() does not stop.
    await loadStubbornModule(dir);
    const report = await runInWorkers(
      { ...options, durationMs: 300 },
      1,
      [50],
      { module: STUBBORN, graceMs: 1500 },
    );
    assert(exists(dir, "loaded"), "the worker was ended before its module had loaded");
    assertEquals(report.errorMessages, [{
      message:
        "Cannot read the report of a bench worker: none came within twice the duration (connecting, then the load) and 1.5 s more",
      count: 1,
    }]);
    assert(exists(dir, "ended"), "the run returned while the worker it ended still ran");
    assertEquals(exists(dir, "closed"), false, "descriptors were closed under the running worker");
    // Then they were closed: its connections, its epoll instance, its eventfd.
    await waitFor(
      () => openIoDescriptors() <= before,
      `the descriptors to come back to ${before} (${openIoDescriptors()} now)`,
      5000,
    );
  } finally {
    Deno.env.delete("ECHO_STUBBORN_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an ended bench worker that runs on for too long keeps its descriptors, and the run says so", async () => {
  await using server = await new ServerProcess(["--log-level", "warning"]).ready();
  const dir = await Deno.makeTempDir();
  Deno.env.set("ECHO_STUBBORN_DIR", dir);
  try {
    await loadStubbornModule(dir);
    const report = await runInWorkers(
      { hostname: "127.0.0.1", port: server.port, connections: 2, size: 100, durationMs: 300 },
      1,
      [50],
      {
        module: STUBBORN,
        graceMs: 1500,
        endingMs: 200,
      },
    );
    assertEquals(report.errorMessages.map(({ message }) => message), [
      "Cannot read the report of a bench worker: none came within twice the duration (connecting, then the load) and 1.5 s more",
      "Cannot close the descriptors of bench worker 0: it still runs 0.2 s after it was ended; " +
      "its sockets stay open until the process ends",
    ]);
    // The worker runs on, its descriptors untouched, until its microtasks end. (They stay open
    // for the rest of this process: that is the rule, as nothing can tell when it stops.)
    await waitFor(() => exists(dir, "ended"), "the worker's microtasks to end", 10_000);
    assertEquals(exists(dir, "closed"), false, "descriptors were closed under the running worker");
  } finally {
    Deno.env.delete("ECHO_STUBBORN_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runBench refuses more workers than connections before starting any", async () => {
  const before = openIoDescriptors();
  await assertRejects(
    () =>
      runBench({
        hostname: "127.0.0.1",
        port: 1,
        connections: 2,
        workers: 3,
        size: 1,
        durationMs: 1,
      }),
    RangeError,
    "use at most 2 workers",
  );
  assertEquals(openIoDescriptors(), before);
});
