/**
 * The TCP layer's logger and the address formatting its log lines use.
 * The library only logs; configuring LogTape is up to the application.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the TCP layer: category `["echo", "tcp"]`. */
export const tcpLogger: Logger = getLogger(["echo", "tcp"]);

/** Formats an address as `host:port`, with IPv6 hosts in brackets. */
export function formatAddress(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  return "path" in addr ? addr.path : String(addr);
}
