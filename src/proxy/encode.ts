/**
 * Writing a PROXY protocol header, version 1 (text) or 2 (binary), for a
 * connection a proxy relays or makes itself. Pure: it returns the bytes to
 * send first on the connection, at once.
 *
 * @example A relayed TCP connection, in both versions
 * ```ts
 * import { encodeProxyHeader } from "@x/echo/proxy";
 *
 * const source: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.1", port: 56324 };
 * const destination: Deno.NetAddr = { transport: "tcp", hostname: "198.51.100.7", port: 443 };
 * const v1 = encodeProxyHeader({ version: 1, source, destination });
 * console.log(new TextDecoder().decode(v1)); // "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"
 * const v2 = encodeProxyHeader({ version: 2, source, destination });
 * console.log(v2.length); // 28: 16 fixed bytes and 12 of addresses
 * ```
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";
import { canonicalHost, formatIpv6 } from "../sockets/_address.ts";
import { crc32c as checksum } from "./_crc32c.ts";
import { parseIpv4, parseIpv6 } from "./_ip.ts";
import { PP2_TYPE_CRC32C, PROXY_V2_SIGNATURE, type ProxyTlv } from "./header.ts";

/**
 * What `encodeProxyHeader` writes.
 *
 * - `version`: 1 for the text line, 2 for the binary header.
 * - `command`: `"proxy"` (the default) for a relayed connection, with
 *   `source` and `destination`; `"local"` for the proxy's own connection
 *   (a health check), without addresses. Version 2 writes LOCAL with an
 *   unspecified family and no address block; version 1 has no LOCAL and
 *   writes `PROXY UNKNOWN`. `"proxy"` without addresses (a connection of a
 *   kind the header cannot describe) is `PROXY UNKNOWN` in version 1 and
 *   PROXY with an unspecified family in version 2.
 * - `source`, `destination`: both or neither; `"tcp"` or `"udp"` (version 2
 *   only), the same for both; IP address literals of one family. An
 *   IPv4-mapped IPv6 address (`"::ffff:192.0.2.1"`, as a dual-stack socket
 *   reports an IPv4 peer) beside an IPv4 one is written as IPv4; two mapped
 *   addresses stay IPv6.
 * - `tlvs`: version 2 only, written in order after the addresses.
 * - `crc32c`: version 2 only; when true a `PP2_TYPE_CRC32C` TLV is added
 *   last, holding the checksum of the whole header.
 *
 * @example
 * ```ts
 * import type { ProxyHeaderOptions } from "@x/echo/proxy";
 *
 * const healthCheck: ProxyHeaderOptions = { version: 2, command: "local" };
 * console.log(healthCheck.command); // "local"
 * ```
 */
export interface ProxyHeaderOptions {
  /** 1 for the text line, 2 for the binary header. */
  version: 1 | 2;
  /** `"proxy"` (the default): a relayed connection; `"local"`: the proxy's own, no addresses. */
  command?: "proxy" | "local";
  /** The original client. */
  source?: Deno.NetAddr;
  /** The address the client connected to. */
  destination?: Deno.NetAddr;
  /** Version 2 only: TLVs to write after the addresses, in order. */
  tlvs?: ProxyTlv[];
  /** Version 2 only: add a CRC32C TLV with the header's checksum. Default false. */
  crc32c?: boolean;
}

/** An address checked for encoding: its family and bytes. */
interface Endpoint {
  bytes: Uint8Array;
  port: number;
}

/**
 * Writes a PROXY protocol header (see `ProxyHeaderOptions` for what each
 * option does). Throws a `TypeError` or `RangeError` naming the bad value:
 * an address that is not an IP literal, a bad port, one address without the
 * other, two families or transports, UDP or TLVs in version 1, a TLV type
 * outside 0 to 255, or more than 65,535 bytes after the 16 fixed ones.
 *
 * @example A UDP datagram's header with TLVs and a checksum
 * ```ts
 * import { encodeProxyHeader, parseProxyHeader, PP2_TYPE_AUTHORITY } from "@x/echo/proxy";
 *
 * const header = encodeProxyHeader({
 *   version: 2,
 *   source: { transport: "udp", hostname: "2001:db8::1", port: 5353 },
 *   destination: { transport: "udp", hostname: "2001:db8::53", port: 53 },
 *   tlvs: [{ type: PP2_TYPE_AUTHORITY, value: new TextEncoder().encode("example.com") }],
 *   crc32c: true,
 * });
 * const result = parseProxyHeader(header);
 * if (result.status === "complete") {
 *   console.log(result.header.protocol, result.header.authority); // "udp6" "example.com"
 * }
 * ```
 *
 * @example A health check's header
 * ```ts
 * import { encodeProxyHeader } from "@x/echo/proxy";
 *
 * const line = encodeProxyHeader({ version: 1, command: "local" });
 * console.log(new TextDecoder().decode(line)); // "PROXY UNKNOWN\r\n"
 * ```
 */
export function encodeProxyHeader(options: ProxyHeaderOptions): Uint8Array {
  const { version, command = "proxy", source, destination, tlvs = [], crc32c = false } = options;
  if (version !== 1 && version !== 2) {
    throw new RangeError(
      `Cannot encode a PROXY header of version ${JSON.stringify(version)}: ` +
        `it must be 1 or 2`,
    );
  }
  if (command !== "proxy" && command !== "local") {
    throw new TypeError(
      `Cannot encode a PROXY header with command ${JSON.stringify(command)}: ` +
        `it must be "proxy" or "local"`,
    );
  }
  if ((source === undefined) !== (destination === undefined)) {
    throw new TypeError(
      `Cannot encode a PROXY header with ${source === undefined ? "a destination" : "a source"} ` +
        `alone: give both source and destination, or neither for one without addresses`,
    );
  }
  if (command === "local" && source !== undefined) {
    throw new TypeError(
      `Cannot encode a LOCAL PROXY header with addresses: LOCAL carries none; ` +
        `leave out source and destination, or use command "proxy"`,
    );
  }
  if (version === 1 && (tlvs.length > 0 || crc32c)) {
    throw new TypeError(
      `Cannot encode TLVs in a version 1 PROXY header: only version 2 carries them; ` +
        `use version 2`,
    );
  }
  let transport: "tcp" | "udp" | null = null;
  let ends: [Endpoint, Endpoint] | null = null;
  if (source !== undefined && destination !== undefined) {
    transport = checkTransport("source", source);
    if (checkTransport("destination", destination) !== transport) {
      throw new TypeError(
        `Cannot encode a PROXY header from a ${JSON.stringify(source.transport)} source to a ` +
          `${JSON.stringify(destination.transport)} destination: both must have one transport`,
      );
    }
    ends = sameFamily(endpoint("source", source), endpoint("destination", destination));
  }
  if (version === 1) return encodeV1(transport, ends);
  return encodeV2(command, transport, ends, tlvs, crc32c);
}

function checkTransport(side: string, address: Deno.NetAddr): "tcp" | "udp" {
  if (typeof address !== "object" || address === null) {
    throw new TypeError(
      `Cannot encode a PROXY header with ${side} ${String(address)}: it must be a ` +
        `Deno.NetAddr such as { transport: "tcp", hostname: "192.0.2.1", port: 4000 }`,
    );
  }
  const { transport } = address;
  if (transport !== "tcp" && transport !== "udp") {
    throw new TypeError(
      `Cannot encode a PROXY header with ${side} transport ${JSON.stringify(transport)}: ` +
        `it must be "tcp" or "udp"`,
    );
  }
  return transport;
}

function endpoint(side: string, address: Deno.NetAddr): Endpoint {
  const { hostname, port } = address;
  const host = typeof hostname === "string" ? canonicalHost(hostname) : "";
  const bytes = parseIpv4(host) ?? parseIpv6(host);
  if (bytes === null) {
    throw new RangeError(
      `Cannot encode a PROXY header with ${side} hostname ${JSON.stringify(hostname)}: ` +
        `it must be an IPv4 or IPv6 address, such as "192.0.2.1" or "2001:db8::1"`,
    );
  }
  checkInteger(`${side} port`, port, 0, 65535);
  return { bytes, port };
}

/** The IPv4 address in an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`), or `null`. */
function unmapped(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length !== 16) return null;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  return bytes[10] === 0xff && bytes[11] === 0xff ? bytes.slice(12) : null;
}

/** Both endpoints in one family: a mapped IPv6 address beside an IPv4 one becomes IPv4. */
function sameFamily(source: Endpoint, destination: Endpoint): [Endpoint, Endpoint] {
  if (source.bytes.length === destination.bytes.length) return [source, destination];
  const [v4, v6] = source.bytes.length === 4 ? [source, destination] : [destination, source];
  const inner = unmapped(v6.bytes);
  if (inner === null) {
    const v4Text = v4.bytes.join(".");
    throw new RangeError(
      `Cannot encode a PROXY header between IPv4 ${JSON.stringify(v4Text)} and IPv6 ` +
        `${JSON.stringify(formatIpv6(v6.bytes))}: both addresses must be of one family; ` +
        `give the IPv4 one as "::ffff:${v4Text}"`,
    );
  }
  const converted = { bytes: inner, port: v6.port };
  return v6 === source ? [converted, destination] : [source, converted];
}

function encodeV1(transport: "tcp" | "udp" | null, ends: [Endpoint, Endpoint] | null): Uint8Array {
  if (ends === null) return new TextEncoder().encode("PROXY UNKNOWN\r\n");
  if (transport !== "tcp") {
    throw new RangeError(
      `Cannot encode a version 1 PROXY header for transport "udp": ` +
        `version 1 carries TCP only; use version 2`,
    );
  }
  const [source, destination] = ends;
  const v4 = source.bytes.length === 4;
  const host = (bytes: Uint8Array) => v4 ? bytes.join(".") : formatIpv6(bytes);
  return new TextEncoder().encode(
    `PROXY TCP${v4 ? 4 : 6} ${host(source.bytes)} ${host(destination.bytes)} ` +
      `${source.port} ${destination.port}\r\n`,
  );
}

function encodeV2(
  command: "proxy" | "local",
  transport: "tcp" | "udp" | null,
  ends: [Endpoint, Endpoint] | null,
  tlvs: ProxyTlv[],
  crc32c: boolean,
): Uint8Array {
  if (!Array.isArray(tlvs)) {
    throw new TypeError(
      `Cannot encode a PROXY header with tlvs ${String(tlvs)}: it must be an array of ` +
        `{ type, value } objects`,
    );
  }
  tlvs.forEach(({ type, value }, i) => {
    checkInteger(`TLV ${i} type`, type, 0, 255);
    if (!(value instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot encode TLV ${i} with value ${String(value)}: it must be a Uint8Array`,
      );
    }
  });
  const addressSize = ends === null ? 0 : 2 * ends[0].bytes.length + 4;
  const length = addressSize +
    tlvs.reduce((sum, tlv) => sum + 3 + tlv.value.length, 0) + (crc32c ? 7 : 0);
  if (length > 65535) {
    throw new RangeError(
      `Cannot encode a PROXY header of ${length} bytes after its 16 fixed ones: ` +
        `version 2 holds at most 65535; send fewer or shorter TLVs`,
    );
  }
  const out = new Uint8Array(16 + length);
  const view = new DataView(out.buffer);
  out.set(PROXY_V2_SIGNATURE);
  out[12] = command === "local" ? 0x20 : 0x21; // version 2, LOCAL or PROXY
  if (ends !== null) {
    out[13] = (ends[0].bytes.length === 4 ? 0x10 : 0x20) | (transport === "tcp" ? 0x01 : 0x02);
  }
  view.setUint16(14, length);
  let at = 16;
  if (ends !== null) {
    const [source, destination] = ends;
    out.set(source.bytes, at);
    out.set(destination.bytes, at + source.bytes.length);
    at += 2 * source.bytes.length;
    view.setUint16(at, source.port);
    view.setUint16(at + 2, destination.port);
    at += 4;
  }
  for (const { type, value } of tlvs) {
    out[at] = type;
    view.setUint16(at + 1, value.length);
    out.set(value, at + 3);
    at += 3 + value.length;
  }
  if (crc32c) {
    out[at] = PP2_TYPE_CRC32C;
    view.setUint16(at + 1, 4);
    view.setUint32(at + 3, checksum(out));
  }
  return out;
}
