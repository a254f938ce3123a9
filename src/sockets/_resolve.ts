/**
 * Names to addresses, once, before a socket is opened: the UDP client sends
 * to an address and filters answers by it; the epoll TCP client connects
 * through libc, whose `getaddrinfo` would block the main thread.
 *
 * @module
 */

/**
 * `hostname` as an IP address, in the form sockets report addresses in:
 * IPv6 in its short form, a name resolved once (through `node:dns`, off
 * the main thread).
 *
 * @throws {Deno.errors.NotFound} naming a host name that does not resolve.
 * @throws {TypeError} for a malformed IPv6 address.
 */
export async function resolveHost(
  transport: "tcp" | "udp",
  hostname: string,
  port: number,
): Promise<Deno.NetAddr> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)) return { transport, hostname, port };
  if (hostname.includes(":")) {
    const bare = hostname.replace(/^\[(.*)\]$/, "$1");
    let canonical: string;
    try {
      canonical = new URL(`udp://[${bare}]/`).hostname.slice(1, -1);
    } catch {
      throw new TypeError(
        `Cannot use hostname ${JSON.stringify(hostname)}: it is not an IPv6 address; ` +
          `use an address such as "::1", or a host name`,
      );
    }
    return { transport, hostname: canonical, port };
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
