/**
 * The server program's `--admin-port` and `--admin-hostname` flags: where
 * the admin HTTP listener (health, readiness, metrics) listens.
 *
 * @module
 */

import { integerFlag, textFlag, UsageError } from "./_args.ts";

/** Where the admin listener listens. */
export interface AdminAddress {
  /** The address to listen on. */
  hostname: string;
  /** The port; 0 picks a free one. */
  port: number;
}

/** The flags' lines in `--help`. */
export const ADMIN_FLAGS_USAGE = `Health and metrics (an HTTP listener of its own):
  --admin-port N            serve /healthz, /readyz and /metrics (Prometheus text format)
                            on this port, 0 for any free one (default: no admin listener);
                            /readyz answers 503 from the first SIGINT/SIGTERM on
  --admin-hostname ADDR     address of the admin listener (default 127.0.0.1)`;

/** The `parseArgs` string flags. */
export const ADMIN_FLAGS: readonly string[] = ["admin-port", "admin-hostname"];

/**
 * The admin listener's address from the flags, or `undefined` without
 * `--admin-port`. `ports` and `transports` are the echo listeners', whose
 * TCP ports the admin listener cannot share.
 *
 * @throws {UsageError} for a bad value, or `--admin-hostname` alone.
 */
export function adminFromFlags(
  flags: { "admin-port"?: string; "admin-hostname"?: string },
  ports: readonly number[],
  transports: readonly ("tcp" | "udp")[],
): AdminAddress | undefined {
  if (flags["admin-port"] === undefined) {
    if (flags["admin-hostname"] !== undefined) {
      throw new UsageError(
        "Cannot use --admin-hostname without --admin-port: it says where the admin listener " +
          "listens; add --admin-port N or drop it",
      );
    }
    return undefined;
  }
  const port = integerFlag("admin-port", flags["admin-port"], 0, 65535);
  if (port !== 0 && transports.includes("tcp") && ports.includes(port)) {
    throw new UsageError(
      `Cannot use --admin-port ${port}: the echo server listens on TCP port ${port} too; ` +
        "choose another port for one of them",
    );
  }
  const hostname = flags["admin-hostname"] === undefined
    ? "127.0.0.1"
    : textFlag("admin-hostname", flags["admin-hostname"]);
  return { hostname, port };
}
