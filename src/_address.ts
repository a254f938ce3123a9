/**
 * Address formatting shared by every layer's messages and log lines.
 *
 * @module
 */

/** Formats an address as `host:port`, with IPv6 hosts in brackets. */
export function formatAddress(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  return "path" in addr ? addr.path : String(addr);
}
