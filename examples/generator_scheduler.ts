/**
 * What an event loop does underneath, built by hand: a cooperative
 * scheduler that runs generator functions as tasks. A task never waits by
 * itself; it yields what it is waiting for (`yield ["recv", conn]`), and the
 * scheduler runs other tasks until that is done, then resumes it with the
 * result. The server answers every read with `GOT:` and the data.
 *
 * Run it:   deno run -A examples/generator_scheduler.ts [port]    (default 8888)
 * Try it:   nc 127.0.0.1 8888   in several terminals at once.
 *
 * The tutorial's scheduler uses select(): it waits until a socket is
 * readable, and the task then calls recv() itself. Deno offers no select(),
 * only operations that complete later, so this scheduler starts the
 * operation for the task and hands the result back (the completion model of
 * io_uring and Windows IOCP, where select() and epoll are the readiness
 * model). Either way the shape is the same: one loop, many paused tasks,
 * and a task runs only between two yields. `async`/`await` is this same
 * machinery, written for you by the language.
 */

const port = Number(Deno.args[0] ?? 8888);
const PREFIX = new TextEncoder().encode("GOT:");

/** What a task can wait for. */
type Wait =
  | ["accept", Deno.TcpListener]
  | ["recv", Deno.TcpConn]
  | ["send", Deno.TcpConn, Uint8Array];

/** A task: a generator that yields what it waits for and is resumed with the result. */
type Task = Generator<Wait, void, unknown>;

class Scheduler {
  /** Tasks ready to run, each with the value to resume it with. */
  #ready: { task: Task; value?: unknown; error?: unknown }[] = [];
  /** How many tasks are waiting for an operation to finish. */
  #waiting = 0;
  /** Resolved when an operation finishes while the loop sleeps. */
  #wake = Promise.withResolvers<void>();

  spawn(task: Task): void {
    this.#ready.push({ task });
  }

  /** The event loop: run what is ready; when nothing is, sleep until an operation finishes. */
  async run(): Promise<void> {
    while (this.#ready.length > 0 || this.#waiting > 0) {
      while (this.#ready.length > 0) {
        const { task, value, error } = this.#ready.shift()!;
        // Run the task up to its next yield: this is the only place task code runs.
        const step = error === undefined ? task.next(value) : task.throw(error);
        if (!step.done) this.#start(task, step.value);
      }
      if (this.#waiting > 0) {
        await this.#wake.promise; // the only place the loop waits
        this.#wake = Promise.withResolvers();
      }
    }
  }

  /** Starts the operation a task waits for; when it finishes, the task is ready again. */
  #start(task: Task, wait: Wait): void {
    this.#waiting++;
    perform(wait).then(
      (value) => this.#ready.push({ task, value }),
      (error) => this.#ready.push({ task, error: error ?? new Error("failed") }),
    ).finally(() => {
      this.#waiting--;
      this.#wake.resolve();
    });
  }
}

/** Does the I/O a task asked for. */
async function perform(wait: Wait): Promise<unknown> {
  switch (wait[0]) {
    case "accept":
      return await wait[1].accept();
    case "recv": {
      const buffer = new Uint8Array(4096);
      const n = await wait[1].read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    }
    case "send": {
      const [, conn, data] = wait;
      for (let sent = 0; sent < data.length;) sent += await conn.write(data.subarray(sent));
      return data.length;
    }
  }
}

const scheduler = new Scheduler();

/** Accepts connections forever, spawning an echo task for each. */
function* acceptTask(listener: Deno.TcpListener): Task {
  while (true) {
    let conn: Deno.TcpConn;
    try {
      conn = (yield ["accept", listener]) as Deno.TcpConn;
    } catch {
      return; // the listener was closed: stop accepting
    }
    scheduler.spawn(echoTask(conn));
  }
}

/** Answers each read with "GOT:" and the data, until the client closes. */
function* echoTask(conn: Deno.TcpConn): Task {
  const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
  console.log(`Connection from ${peer}`);
  try {
    while (true) {
      const data = (yield ["recv", conn]) as Uint8Array | null;
      if (data === null) break;
      const reply = new Uint8Array(PREFIX.length + data.length);
      reply.set(PREFIX);
      reply.set(data, PREFIX.length);
      yield ["send", conn, reply];
    }
    console.log(`${peer} closed`);
  } catch (error) {
    console.log(`${peer} failed: ${(error as Error).message}`);
  } finally {
    conn.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`Serving on 127.0.0.1:${listener.addr.port}`);
Deno.addSignalListener("SIGINT", () => listener.close()); // Ctrl-C: stop accepting

scheduler.spawn(acceptTask(listener));
await scheduler.run(); // returns when no task is left
