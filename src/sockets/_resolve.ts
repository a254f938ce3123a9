/**
 * Names to addresses, once, before a socket is opened: the UDP client sends
 * to an address and filters answers by it; the epoll TCP client connects
 * through libc, whose `getaddrinfo` would block the main thread.
 *
 * @module
 */

import { formatIpv6, parseIpv4, parseIpv6 } from "./_address.ts";

/**
 * `hostname` as an IP address, in the form sockets report addresses in
 * (IPv4 as four plain numbers, IPv6 as RFC 5952 writes it, `::ffff:a.b.c.d`
 * for an IPv4-mapped one): a client compares the sources of answers with it
 * as text. A name is resolved once (through `node:dns`, off the main thread).
 *
 * @throws {Deno.errors.NotFound} naming a host name that does not resolve.
 * @throws {TypeError} for a malformed IPv6 address.
 */
export async function resolveHost(
  transport: "tcp" | "udp",
  hostname: string,
  port: number,
): Promise<Deno.NetAddr> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)) {
    // "127.0.0.01" is 127.0.0.1; a number past 255 is left for the socket to refuse.
    const bytes = parseIpv4(hostname);
    return { transport, hostname: bytes === null ? hostname : bytes.join("."), port };
  }
  if (hostname.includes(":")) {
    const bytes = parseIpv6(hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase());
    if (bytes === null) {
      throw new TypeError(
        `Cannot use hostname ${JSON.stringify(hostname)}: it is not an IPv6 address; ` +
          `use an address such as "::1", or a host name`,
      );
    }
    return { transport, hostname: formatIpv6(bytes), port };
  }
  const { lookup } = await import("node:dns/promises");
  try {
    const { address } = await lookup(hostname);
    return await resolveHost(transport, address, port);
  } catch (error) {
    throw new Deno.errors.NotFound(
      `Cannot resolve host ${JSON.stringify(hostname)}: ${(error as Error).message}; ` +
        `check the name, or use an IP address`,
      { cause: error },
    );
  }
}
