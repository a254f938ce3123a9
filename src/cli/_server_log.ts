/**
 * The server program's own log lines, beside the library's: the totals of
 * a server run on workers, when it stops.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { formatAddress } from "../_address.ts";
import type { WorkerCounters } from "../workers/pool.ts";

/** Logger of the server program: category `["echo", "server"]`. */
export const serverLogger: Logger = getLogger(["echo", "server"]);

/**
 * Logs, for each listener, the counters of all workers added up and the
 * connections (or datagrams) each worker took.
 */
export function logTotals(workers: readonly WorkerCounters[]): void {
  const listeners = Math.max(0, ...workers.map((worker) => worker.servers.length));
  for (let i = 0; i < listeners; i++) {
    const servers = workers.map((worker) => worker.servers[i]).filter((s) => s !== undefined);
    const { addr, transport } = servers[0];
    const counted = transport === "tcp" ? "accepted" : "received";
    const perWorker = workers
      .map((worker) => `${worker.index}: ${Number(worker.servers[i]?.counters[counted] ?? 0)}`)
      .join(", ");
    serverLogger.info(
      "All workers on {transport} {address} stopped: {counters}; {counted} by worker: {perWorker}",
      {
        transport,
        address: formatAddress(addr),
        counters: addUp(servers.map((server) => server.counters)),
        counted,
        perWorker,
      },
    );
  }
}

/** The counters added up, key by key (peaks: the highest). */
function addUp(counters: readonly Record<string, unknown>[]): Record<string, unknown> {
  const total: Record<string, unknown> = {};
  for (const each of counters) {
    for (const [key, value] of Object.entries(each)) {
      if (typeof value === "number") {
        const sum = (total[key] as number | undefined) ?? 0;
        total[key] = key.endsWith("Peak") ? Math.max(sum, value) : sum + value;
      } else if (typeof value === "object" && value !== null) {
        total[key] = addUp([
          (total[key] as Record<string, unknown>) ?? {},
          value as Record<string, unknown>,
        ]);
      }
    }
  }
  return total;
}
