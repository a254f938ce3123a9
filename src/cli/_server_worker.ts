/**
 * What each worker of `./server --workers N` runs: the same listeners as
 * the program runs without workers, each with SO_REUSEPORT, logging to
 * stderr with the worker's index on each line.
 *
 * @module
 */

import { serveInWorker, type WorkerServer } from "../workers/worker.ts";
import { waitOnMainThread } from "../poll/_poller.ts";
import { flushLogs, setUpLogging } from "./_logging.ts";
import { setBusyPoll } from "./_busy_poll.ts";
import { type ListenerPlan, startListeners } from "./_listeners.ts";
import { countersOf } from "./_metrics.ts";

/** What the program hands each worker. */
export interface ServerWorkerData {
  /** The parsed command: listeners, options and logging. */
  command: ListenerPlan & {
    logLevel: "debug" | "info" | "warning" | "error";
    logFormat: "text" | "json";
    /** `--busy-poll`, in microseconds. */
    busyPoll: number;
    /** How many workers the program runs. */
    workers: number | null;
  };
  /** The ports to listen on: the command's, or those worker 0 was given for port 0. */
  ports: number[];
  /** With `--max-connections`: each port's count of open TCP connections, shared by all workers. */
  connectionCounters?: Int32Array[];
}

serveInWorker<ServerWorkerData>(async ({ index, data }) => {
  // This worker's I/O all goes through its poller (see waitOnMainThread).
  waitOnMainThread(true);
  const { command, ports, connectionCounters } = data;
  await setUpLogging(command.logLevel, command.logFormat, index);
  setBusyPoll(command.busyPoll, command.workers ?? 1);
  // info mode names the worker that answers.
  const options = { ...command.options, info: { worker: index } };
  const udpOptions = { ...command.udpOptions, info: { worker: index } };
  const listeners = await startListeners(
    { ...command, options, udpOptions, ports, connectionCounters },
    true,
  );
  return listeners.map(({ server, description }): WorkerServer => ({
    addr: server.addr,
    // With the open connections, which a TcpServer keeps apart from its counters.
    get counters() {
      return countersOf(server);
    },
    shutdown: () => server.shutdown(),
    // The worker ends once its servers have: its queued log lines are written first.
    finished: server.finished.then(() => flushLogs()),
    label: description,
  }));
});
