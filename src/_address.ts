/**
 * Address formatting shared by every layer's messages and log lines.
 *
 * @module
 */

/**
 * Formats an address as `host:port`, with IPv6 hosts in brackets; a Unix
 * socket as `unix:PATH`, or `unix:(unnamed)` for the unbound end of a
 * connection (a client's, which Deno reports with a `null` path).
 */
export function formatAddress(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  if ("path" in addr) return `unix:${addr.path || "(unnamed)"}`;
  return String(addr);
}
