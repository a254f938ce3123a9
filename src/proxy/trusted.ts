/**
 * Which peers may send a PROXY protocol header: a list of IPv4 and IPv6
 * networks in CIDR notation, matched against a connection's remote address.
 * The specification asks receivers to take the header only from known
 * proxies, since whoever may send it can claim any client address.
 *
 * @example
 * ```ts
 * import { parseCidrList } from "@x/echo/proxy";
 *
 * const trusted = parseCidrList("10.0.0.0/8, 127.0.0.1, ::1/128, fd00::/8");
 * console.log(trusted.includes("10.1.2.3")); // true
 * console.log(trusted.includes("::ffff:10.1.2.3")); // true: an IPv4 peer on a dual-stack socket
 * console.log(trusted.includes("192.0.2.1")); // false
 * ```
 *
 * @module
 */

import { canonicalHost, formatIpv6 } from "../sockets/_address.ts";
import { parseIpv4, parseIpv6 } from "./_ip.ts";

/**
 * A set of networks that `includes` an address when one of them holds it.
 *
 * IPv4 and IPv6 are matched as one space, IPv4 as IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`): so `"10.0.0.0/8"` holds the peer `"::ffff:10.1.2.3"`
 * a dual-stack socket reports, `"0.0.0.0/0"` holds every IPv4 address, and
 * `"::/0"` every address of either family.
 *
 * @example
 * ```ts
 * import { type CidrList, parseCidrList } from "@x/echo/proxy";
 *
 * const trusted: CidrList = parseCidrList(["192.168.0.0/16", "2001:db8::/32"]);
 * const peer: Deno.NetAddr = { transport: "tcp", hostname: "2001:db8::7", port: 51000 };
 * console.log(trusted.includes(peer.hostname)); // true
 * console.log(trusted.entries); // ["192.168.0.0/16", "2001:db8::/32"]
 * ```
 */
export interface CidrList {
  /**
   * Whether an address of the list's networks is `hostname`: an IPv4 or
   * IPv6 literal, as `Deno.NetAddr.hostname` gives it (brackets and a zone
   * are ignored). Anything else, a name included, is not in the list.
   */
  includes(hostname: string): boolean;
  /** The networks, in order, as `address/prefix` with the address in canonical text. */
  readonly entries: readonly string[];
}

/** A network as 16 bytes (IPv4 mapped) and the number of leading bits that must match. */
interface Network {
  bytes: Uint8Array;
  bits: number;
}

/** The 16-byte form of an address: IPv6 as is, IPv4 mapped (`::ffff:a.b.c.d`). */
function toIpv6(host: string): Uint8Array | null {
  const v4 = parseIpv4(host);
  if (v4 === null) return parseIpv6(host);
  const bytes = new Uint8Array(16);
  bytes[10] = bytes[11] = 0xff;
  bytes.set(v4, 12);
  return bytes;
}

function matches(address: Uint8Array, { bytes, bits }: Network): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== bytes[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole] & mask) === bytes[whole];
}

function readEntry(entry: string): { network: Network; text: string } {
  const slash = entry.indexOf("/");
  const host = slash === -1 ? entry : entry.slice(0, slash);
  const v4 = parseIpv4(host);
  const bytes = v4 === null ? parseIpv6(host) : toIpv6(host);
  if (bytes === null) {
    throw new RangeError(
      `Cannot use trusted proxy entry ${JSON.stringify(entry)}: ${JSON.stringify(host)} is not ` +
        `an IPv4 or IPv6 address; write an address or a network such as "10.0.0.0/8", ` +
        `"192.0.2.7" or "fd00::/8"`,
    );
  }
  const max = v4 === null ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const digits = entry.slice(slash + 1);
    prefix = /^(0|[1-9]\d{0,2})$/.test(digits) ? Number(digits) : NaN;
    if (!(prefix <= max)) {
      throw new RangeError(
        `Cannot use trusted proxy entry ${JSON.stringify(entry)}: the prefix length ` +
          `${JSON.stringify(digits)} is not a whole number from 0 to ${max}; write it as in ` +
          `"${host}/${max}"`,
      );
    }
  }
  const bits = prefix + (v4 === null ? 0 : 96);
  const network = { bytes: bytes.slice(), bits };
  // Clear the host bits; the entry must not have had any.
  for (let bit = bits; bit < 128; bit++) network.bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  const address = v4 === null ? formatIpv6(network.bytes) : network.bytes.subarray(12).join(".");
  if (!network.bytes.every((byte, i) => byte === bytes[i])) {
    throw new RangeError(
      `Cannot use trusted proxy entry ${JSON.stringify(entry)}: it has bits set past its ` +
        `prefix length ${prefix}; write the network as "${address}/${prefix}"`,
    );
  }
  return { network, text: `${address}/${prefix}` };
}

/**
 * Reads a list of trusted networks: a comma-separated string such as
 * `"10.0.0.0/8,127.0.0.1,::1/128,fd00::/8"` (white space around entries is
 * ignored) or an array of entries. An entry is an IPv4 or IPv6 address,
 * alone (one address: /32 or /128) or with a prefix length; an empty string
 * or array trusts no one. Throws a `RangeError` naming an entry that is not
 * one, or that has bits set past its prefix length (`"10.0.0.1/8"`), with
 * what to write instead.
 *
 * @example
 * ```ts
 * import { parseCidrList } from "@x/echo/proxy";
 *
 * const trusted = parseCidrList("127.0.0.0/8,::1");
 * console.log(trusted.includes("127.0.0.1"), trusted.includes("::1")); // true true
 * try {
 *   parseCidrList("10.0.0.0/33");
 * } catch (error) {
 *   console.log((error as RangeError).message);
 *   // Cannot use trusted proxy entry "10.0.0.0/33": the prefix length "33" is not a whole
 *   // number from 0 to 32; write it as in "10.0.0.0/32"
 * }
 * ```
 */
export function parseCidrList(list: string | readonly string[]): CidrList {
  let items: string[];
  if (typeof list === "string") {
    items = list.trim() === "" ? [] : list.split(",").map((item) => item.trim());
  } else if (Array.isArray(list) && list.every((item) => typeof item === "string")) {
    items = list.map((item) => item.trim());
  } else {
    throw new TypeError(
      `Cannot use trusted proxies ${String(list)}: they must be a comma-separated string ` +
        `or an array of strings, such as "10.0.0.0/8,::1"`,
    );
  }
  const read = items.map(readEntry);
  const networks = read.map(({ network }) => network);
  return {
    entries: Object.freeze(read.map(({ text }) => text)),
    includes(hostname: string): boolean {
      if (typeof hostname !== "string") return false;
      const address = toIpv6(canonicalHost(hostname));
      return address !== null && networks.some((network) => matches(address, network));
    },
  };
}
