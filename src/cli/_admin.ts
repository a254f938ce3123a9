/**
 * The server program's admin HTTP listener (`--admin-port`), on
 * `Deno.serve`: `/healthz` (200 while the program runs), `/readyz` (200
 * once the listeners serve, 503 from the first SIGINT/SIGTERM on, while they
 * drain) and `/metrics` (see `_metrics.ts`). It listens before the echo
 * listeners start, stays up while they drain, and closes when the program
 * ends.
 *
 * @module
 */

import { formatAddress } from "../_address.ts";
import { privilegeHint } from "../errors.ts";
import type { AdminAddress } from "./_admin_flags.ts";
import { METRICS_CONTENT_TYPE, type MetricsSnapshot, renderMetrics } from "./_metrics.ts";
import { serverLogger } from "./_server_log.ts";

/** Where the program stands, as `/readyz` says. */
type State = "starting" | "ready" | "draining";

/** The admin listener, or one that does nothing when the program has none. */
export interface Admin {
  /** The listeners serve: `/readyz` turns 200, `/metrics` reads `snapshot`; prints the line. */
  serving(snapshot: () => MetricsSnapshot | Promise<MetricsSnapshot>): void;
  /** The listeners drain: `/readyz` turns 503. */
  draining(): void;
  /** Stops listening, once the requests in progress are answered. */
  close(): Promise<void>;
}

const NO_ADMIN: Admin = { serving() {}, draining() {}, close: () => Promise.resolve() };

/** The startup line of the admin listener. */
export function adminLine(addr: Deno.NetAddr): string {
  return `@x/echo admin listening on http://${formatAddress(addr)} (healthz, readyz, metrics)`;
}

/**
 * Starts the admin listener at `address`; without one, an {@linkcode Admin}
 * that does nothing.
 *
 * @throws {Error} naming the address when it cannot listen there (such as
 * `Deno.errors.AddrInUse`, of the same class).
 */
export function openAdmin(address: AdminAddress | undefined): Admin {
  if (address === undefined) return NO_ADMIN;
  let state: State = "starting";
  let snapshot: (() => MetricsSnapshot | Promise<MetricsSnapshot>) | null = null;
  const handler = async (request: Request): Promise<Response> => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "method not allowed: use GET\n", { allow: "GET, HEAD" });
    }
    switch (new URL(request.url).pathname) {
      case "/healthz":
        return text(200, "ok\n");
      case "/readyz":
        return text(state === "ready" ? 200 : 503, `${state}\n`);
      case "/metrics":
        if (snapshot === null) return text(503, "starting\n");
        return text(200, renderMetrics(await snapshot()), {
          "content-type": METRICS_CONTENT_TYPE,
        });
      default:
        return text(404, "not found: the paths are /healthz, /readyz and /metrics\n");
    }
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: address.hostname,
      port: address.port,
      onListen() {}, // the program prints its own line, after the listeners'
      onError(error) {
        serverLogger.error("Admin request failed: {error}", { error });
        return text(500, "internal error\n");
      },
    }, handler);
  } catch (error) {
    throw cannotListen(address, error);
  }
  return {
    serving(read) {
      snapshot = read;
      if (state === "starting") state = "ready";
      console.log(adminLine(server.addr));
    },
    draining() {
      state = "draining";
    },
    close: () => server.shutdown(),
  };
}

/** A plain-text response. */
function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

/** The error of a failed listen, of the same class, naming the address and what to do. */
function cannotListen({ hostname, port }: AdminAddress, error: unknown): Error {
  const where = formatAddress({ transport: "tcp", hostname, port });
  const reason = error instanceof Deno.errors.AddrInUse
    ? "the address is in use; choose another --admin-port or stop what listens there"
    : error instanceof Deno.errors.PermissionDenied
    ? `permission denied${privilegeHint(port, error).replace("use a port", "use an --admin-port")}`
    : `${error instanceof Error ? error.message : String(error)}; check --admin-hostname`;
  const message = `Cannot listen for the admin endpoints on ${where}: ${reason}`;
  if (error instanceof Deno.errors.AddrInUse) return new Deno.errors.AddrInUse(message);
  if (error instanceof Deno.errors.PermissionDenied) {
    return new Deno.errors.PermissionDenied(message);
  }
  return new Error(message);
}
