/**
 * Reading a PROXY protocol header (version 1 or 2) from the first bytes of a
 * connection, without I/O: `parseProxyHeader` for bytes at hand, and
 * `ProxyHeaderReader` for a header that arrives in pieces.
 *
 * Both refuse as early as the bytes allow: a byte that cannot continue
 * `"PROXY "` or the version 2 signature, a version 1 field that can no longer
 * become an address or port, a version 2 version, command, family or length
 * that is not allowed. So a client that does not speak the protocol is
 * refused on its first byte, not after a timeout. Neither ever throws on its
 * input.
 *
 * @example Reading the header off a connection
 * ```ts
 * import { ProxyHeaderReader } from "@x/echo/proxy";
 *
 * // What a proxy sends: the header, then the client's own bytes.
 * const chunks = [
 *   new TextEncoder().encode("PROXY TCP4 192.0.2.1 198.51.100.7 5"),
 *   new TextEncoder().encode("6324 443\r\nGET / HTTP/1.1\r\n"),
 * ];
 * const reader = new ProxyHeaderReader();
 * for (const chunk of chunks) {
 *   const result = reader.push(chunk);
 *   if (result.status === "incomplete") continue;
 *   if (result.status === "invalid") throw new Error(`Cannot accept: ${result.reason}`);
 *   console.log(result.header.source); // { transport: "tcp", hostname: "192.0.2.1", port: 56324 }
 *   console.log(new TextDecoder().decode(result.rest)); // "GET / HTTP/1.1\r\n"
 *   break;
 * }
 * ```
 *
 * @module
 */

import { formatIpv6 } from "../sockets/_address.ts";
import { crc32c } from "./_crc32c.ts";
import {
  isIpv4Prefix,
  isIpv6Prefix,
  isPortPrefix,
  parseIpv4,
  parseIpv6,
  parsePort,
} from "./_ip.ts";
import {
  PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_AWS,
  PP2_TYPE_AZURE,
  PP2_TYPE_CRC32C,
  PP2_TYPE_GCP,
  PP2_TYPE_NETNS,
  PP2_TYPE_SSL,
  PP2_TYPE_UNIQUE_ID,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  type ProxySslInfo,
  type ProxyTlv,
  type ProxyTransport,
} from "./header.ts";

/**
 * What `parseProxyHeader` makes of the bytes so far: `"incomplete"` (a
 * valid start: wait for more), `"invalid"` (close the connection; `reason`
 * says what was wrong, for the log) or `"complete"` (`length` bytes were the
 * header; the bytes after them are the connection's data).
 *
 * @example
 * ```ts
 * import { parseProxyHeader, type ProxyParseResult } from "@x/echo/proxy";
 *
 * const result: ProxyParseResult = parseProxyHeader(new TextEncoder().encode("hello"));
 * console.log(result); // { status: "invalid", reason: 'not a PROXY protocol header (first bytes "hello")' }
 * ```
 */
export type ProxyParseResult =
  | { status: "incomplete" }
  | { status: "invalid"; reason: string }
  | { status: "complete"; header: ProxyHeader; length: number };

/**
 * What `ProxyHeaderReader.push` makes of the bytes so far: as
 * `ProxyParseResult`, and when complete `rest`, the part of the chunk just
 * pushed that came after the header (a view of that chunk, possibly empty).
 *
 * @example
 * ```ts
 * import { ProxyHeaderReader, type ProxyReadResult } from "@x/echo/proxy";
 *
 * const result: ProxyReadResult = new ProxyHeaderReader().push(
 *   new TextEncoder().encode("PROXY UNKNOWN\r\nhi"),
 * );
 * if (result.status === "complete") console.log(result.rest.length); // 2
 * ```
 */
export type ProxyReadResult =
  | { status: "incomplete" }
  | { status: "invalid"; reason: string }
  | { status: "complete"; header: ProxyHeader; length: number; rest: Uint8Array };

const INCOMPLETE: { status: "incomplete" } = { status: "incomplete" };
const PROXY_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
const CR = 0x0d;
const LF = 0x0a;

const PP2_SUBTYPE_SSL_VERSION = 0x21;
const PP2_SUBTYPE_SSL_CN = 0x22;
const PP2_SUBTYPE_SSL_CIPHER = 0x23;
const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
/** The unique ID TLV holds at most this many bytes. */
const UNIQUE_ID_MAX = 128;
/** Bytes of the address block for family 1, 2 and 3 (with a stream or datagram protocol). */
const ADDRESS_SIZES = [0, 12, 36, 216];
const UNIX_PATH_SIZE = 108;

const text = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Reads a PROXY protocol header, version 1 or 2, from the start of `bytes`.
 * Decides `"invalid"` as soon as a prefix can no longer become a header, so
 * a client that does not speak the protocol is refused on its first byte
 * that cannot match. Never throws, never reads past `bytes`; TLV values in
 * the result are copies, so `bytes` may be reused afterwards.
 *
 * Version 1 is read strictly: single spaces, IPv4 octets and ports in
 * decimal without leading zeros, addresses of the announced family, CRLF
 * within 107 bytes; `UNKNOWN` may be followed by anything up to the CRLF.
 * Version 2 must have version 2 and command LOCAL or PROXY, a family and
 * protocol the specification names (other values are refused whatever the
 * command), an address block that fits in its length, TLVs that fill the
 * rest exactly, and a CRC32C TLV, if any, of 4 bytes that matches.
 *
 * - LOCAL: the address block is skipped, not read (the receiver uses the
 *   connection's own addresses); TLVs after it are read. A LOCAL header may
 *   have length 0 whatever family it names.
 * - An unspecified family or protocol: no address block. The bytes after
 *   the 16 fixed ones are read as TLVs when they are a well-formed TLV list
 *   (as HAProxy sends with its LOCAL health checks, a CRC32C included), and
 *   otherwise ignored as address information of a form not known here.
 * - TLVs: the first of each known type is decoded; a unique ID over 128
 *   bytes, an SSL TLV under 5 bytes or with sub-TLVs that overrun it, and
 *   two CRC32C TLVs are invalid. AWS, Azure and Google Cloud TLVs are
 *   decoded only in their documented shape, and listed in `tlvs` anyway.
 *
 * @example
 * ```ts
 * import { parseProxyHeader } from "@x/echo/proxy";
 *
 * const bytes = new TextEncoder().encode("PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\nhello");
 * const result = parseProxyHeader(bytes);
 * if (result.status === "complete") {
 *   console.log(result.header.protocol); // "tcp6"
 *   console.log(new TextDecoder().decode(bytes.subarray(result.length))); // "hello"
 * }
 * console.log(parseProxyHeader(bytes.subarray(0, 20)).status); // "incomplete"
 * ```
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParseResult {
  if (bytes.length === 0) return INCOMPLETE;
  if (bytes[0] === PROXY_PREFIX[0]) return parseV1(bytes);
  if (bytes[0] === PROXY_V2_SIGNATURE[0]) return parseV2(bytes);
  return notAHeader(bytes);
}

function invalid(reason: string): { status: "invalid"; reason: string } {
  return { status: "invalid", reason };
}

function notAHeader(bytes: Uint8Array): { status: "invalid"; reason: string } {
  return invalid(`not a PROXY protocol header (first bytes ${show(bytes.subarray(0, 16))})`);
}

/** Bytes as a quoted string for a reason: printable ASCII as is, others escaped. */
function show(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    if (byte === 0x22 || byte === 0x5c) out += "\\" + String.fromCharCode(byte);
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else if (byte === CR) out += "\\r";
    else if (byte === LF) out += "\\n";
    else out += "\\x" + byte.toString(16).padStart(2, "0");
  }
  return `"${out}"`;
}

/** A field of a version 1 line, quoted and cut short for a reason. */
function quote(field: string): string {
  return JSON.stringify(field.length > 45 ? field.slice(0, 45) + "..." : field);
}

// ---- Version 1 -------------------------------------------------------------

function parseV1(bytes: Uint8Array): ProxyParseResult {
  for (let i = 0; i < PROXY_PREFIX.length && i < bytes.length; i++) {
    if (bytes[i] !== PROXY_PREFIX[i]) return notAHeader(bytes);
  }
  // The CR must come by byte 105, so that the line with its CRLF is at most 107 bytes.
  const limit = Math.min(bytes.length, PROXY_V1_MAX_LENGTH - 1);
  let cr = -1;
  for (let i = PROXY_PREFIX.length; i < limit; i++) {
    if (bytes[i] === CR) {
      cr = i;
      break;
    }
    if (bytes[i] === LF) return invalid(`v1 header has a line feed without a carriage return`);
  }
  const end = cr === -1 ? limit : cr;
  let line = "";
  for (let i = PROXY_PREFIX.length; i < end; i++) line += String.fromCharCode(bytes[i]);
  const complete = cr !== -1 && cr + 1 < bytes.length;
  const fields = readV1Fields(line, complete);
  if (typeof fields === "string") return invalid(fields);
  if (fields === null) {
    if (cr === -1 && bytes.length >= PROXY_V1_MAX_LENGTH - 1) {
      return invalid(`v1 header longer than ${PROXY_V1_MAX_LENGTH} bytes`);
    }
    return INCOMPLETE;
  }
  if (bytes[cr + 1] !== LF) return invalid("v1 header has a carriage return without a line feed");
  return {
    status: "complete",
    header: { version: 1, command: "proxy", tlvs: [], ...fields },
    length: cr + 2,
  };
}

type V1Fields = Pick<ProxyHeader, "protocol" | "source" | "destination">;

const V1_PROTOCOLS = ["TCP4", "TCP6", "UNKNOWN"];
const V1_FIELD_NAMES = ["source address", "destination address", "source port", "destination port"];

/**
 * The fields of the line after `"PROXY "` (without its CRLF): the addresses
 * when `complete`; `null` when the line may still become valid; the reason
 * when it cannot.
 */
function readV1Fields(line: string, complete: boolean): V1Fields | string | null {
  const space = line.indexOf(" ");
  const protocol = space === -1 ? line : line.slice(0, space);
  const known = V1_PROTOCOLS.includes(protocol);
  if (!known && (complete || space !== -1 || !V1_PROTOCOLS.some((p) => p.startsWith(protocol)))) {
    return `v1 protocol ${quote(protocol)} is not TCP4, TCP6 or UNKNOWN`;
  }
  if (protocol === "UNKNOWN") {
    return complete ? { protocol: "unknown", source: null, destination: null } : null;
  }
  if (space === -1) return complete ? `v1 ${protocol} header has no addresses` : null;
  const fields = line.slice(space + 1).split(" ");
  const v4 = protocol === "TCP4";
  for (let k = 0; k < fields.length && k < 4; k++) {
    const field = fields[k];
    const partial = !complete && k === fields.length - 1;
    if (k < 2) {
      const ok = partial
        ? (v4 ? isIpv4Prefix(field) : isIpv6Prefix(field))
        : (v4 ? parseIpv4(field) : parseIpv6(field)) !== null;
      if (!ok) return `v1 ${V1_FIELD_NAMES[k]} ${quote(field)} is not an IPv${v4 ? 4 : 6} address`;
    } else if (partial ? !isPortPrefix(field) : parsePort(field) === null) {
      return `v1 ${V1_FIELD_NAMES[k]} ${quote(field)} is not a port from 0 to 65535 ` +
        `without leading zeros`;
    }
  }
  if (fields.length > 4) return `v1 ${protocol} header has more than 4 fields after ${protocol}`;
  if (!complete) return null;
  if (fields.length < 4) return `v1 ${protocol} header has ${fields.length} of its 4 fields`;
  const host = (field: string) => v4 ? field : formatIpv6(parseIpv6(field)!);
  return {
    protocol: v4 ? "tcp4" : "tcp6",
    source: { transport: "tcp", hostname: host(fields[0]), port: parsePort(fields[2])! },
    destination: { transport: "tcp", hostname: host(fields[1]), port: parsePort(fields[3])! },
  };
}

// ---- Version 2 -------------------------------------------------------------

function parseV2(bytes: Uint8Array): ProxyParseResult {
  for (let i = 0; i < PROXY_V2_SIGNATURE.length && i < bytes.length; i++) {
    if (bytes[i] !== PROXY_V2_SIGNATURE[i]) return notAHeader(bytes);
  }
  if (bytes.length < 13) return INCOMPLETE;
  const version = bytes[12] >> 4;
  const command = bytes[12] & 0x0f;
  if (version !== 2) return invalid(`v2 header has version ${version}, not 2`);
  if (command > 1) {
    return invalid(`v2 header has command ${command}, neither LOCAL (0) nor PROXY (1)`);
  }
  if (bytes.length < 14) return INCOMPLETE;
  const family = bytes[13] >> 4;
  const transport = bytes[13] & 0x0f;
  if (family > 3) {
    return invalid(
      `v2 header has address family ${family}, not 0 (unspecified), 1 (IPv4), 2 (IPv6) or 3 (Unix)`,
    );
  }
  if (transport > 2) {
    return invalid(
      `v2 header has transport protocol ${transport}, not 0 (unspecified), 1 (stream) ` +
        `or 2 (datagram)`,
    );
  }
  if (bytes.length < 16) return INCOMPLETE;
  const length = (bytes[14] << 8) | bytes[15];
  const addressSize = transport === 0 ? 0 : ADDRESS_SIZES[family];
  // A LOCAL header may leave the addresses out (length 0) whatever its family says.
  if (addressSize > length && (command === 1 || length !== 0)) {
    return invalid(`v2 address block of ${addressSize} bytes does not fit in length ${length}`);
  }
  const total = 16 + length;
  if (bytes.length < total) return INCOMPLETE;
  const header: ProxyHeader = {
    version: 2,
    command: command === 1 ? "proxy" : "local",
    protocol: "unknown",
    source: null,
    destination: null,
    tlvs: [],
  };
  // LOCAL: the receiver uses the real endpoints; the address block is skipped, not read.
  if (command === 1 && addressSize > 0) readAddresses(bytes, family, transport, header);
  const start = 16 + Math.min(addressSize, length);
  const tlvs = splitTlvs(bytes, start, total);
  if (typeof tlvs === "string") {
    // Unspecified: the bytes may be address information of a form not known here, which the
    // receiver ignores; only a known address block is certainly followed by TLVs.
    if (addressSize === 0) return { status: "complete", header, length: total };
    return invalid(tlvs);
  }
  const problem = readTlvs(bytes.subarray(0, total), tlvs, header);
  if (problem !== null) return invalid(problem);
  return { status: "complete", header, length: total };
}

function readAddresses(
  bytes: Uint8Array,
  family: number,
  transport: number,
  header: ProxyHeader,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (family === 3) {
    header.protocol = transport === 1 ? "unix-stream" : "unix-dgram";
    header.source = { transport: "unix", path: unixPath(bytes, 16) };
    header.destination = { transport: "unix", path: unixPath(bytes, 16 + UNIX_PATH_SIZE) };
    return;
  }
  const size = family === 1 ? 4 : 16;
  const net = transport === 1 ? "tcp" : "udp";
  const host = (at: number) =>
    family === 1 ? bytes.subarray(at, at + 4).join(".") : formatIpv6(bytes.subarray(at, at + 16));
  header.protocol = `${net}${family === 1 ? 4 : 6}` as ProxyTransport;
  header.source = { transport: net, hostname: host(16), port: view.getUint16(16 + 2 * size) };
  header.destination = {
    transport: net,
    hostname: host(16 + size),
    port: view.getUint16(18 + 2 * size),
  };
}

/** The path in the 108 bytes at `at`: up to the first NUL. */
function unixPath(bytes: Uint8Array, at: number): string {
  let end = at;
  while (end < at + UNIX_PATH_SIZE && bytes[end] !== 0) end++;
  return text.decode(bytes.subarray(at, end));
}

/** A TLV where it was read: its type, the offset and length of its value. */
interface TlvSpan {
  type: number;
  at: number;
  length: number;
}

/** The TLVs that fill `[start, end)` exactly, or the reason they do not. */
function splitTlvs(
  bytes: Uint8Array,
  start: number,
  end: number,
  what = "TLV",
): TlvSpan[] | string {
  const spans: TlvSpan[] = [];
  for (let at = start; at < end;) {
    if (end - at < 3) {
      return `v2 ${what} at byte ${at} has ${end - at} of its 3 type and length bytes`;
    }
    const type = bytes[at];
    const length = (bytes[at + 1] << 8) | bytes[at + 2];
    if (at + 3 + length > end) {
      return `v2 ${what} 0x${hex(type)} at byte ${at} of ${length} bytes overruns the end ` +
        `at byte ${end}`;
    }
    spans.push({ type, at: at + 3, length });
    at += 3 + length;
  }
  return spans;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Adds the TLVs to `header`, decoding the known ones; the reason when one is wrong. */
function readTlvs(bytes: Uint8Array, spans: TlvSpan[], header: ProxyHeader): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let crcAt = -1;
  for (const { type, at, length } of spans) {
    const value = bytes.slice(at, at + length);
    header.tlvs.push({ type, value } satisfies ProxyTlv);
    switch (type) {
      case PP2_TYPE_ALPN:
        header.alpn ??= text.decode(value);
        break;
      case PP2_TYPE_AUTHORITY:
        header.authority ??= text.decode(value);
        break;
      case PP2_TYPE_CRC32C:
        if (length !== 4) return `v2 CRC32C TLV has ${length} bytes, not 4`;
        if (crcAt !== -1) return "v2 header has two CRC32C TLVs";
        crcAt = at;
        break;
      case PP2_TYPE_UNIQUE_ID:
        if (length > UNIQUE_ID_MAX) {
          return `v2 unique ID TLV has ${length} bytes, more than ${UNIQUE_ID_MAX}`;
        }
        header.uniqueId ??= value.slice();
        break;
      case PP2_TYPE_SSL: {
        if (length < 5) return `v2 SSL TLV has ${length} bytes, fewer than its 5 fixed ones`;
        const ssl = readSsl(bytes, view, at, length);
        if (typeof ssl === "string") return ssl;
        header.ssl ??= ssl;
        break;
      }
      case PP2_TYPE_NETNS:
        header.netns ??= text.decode(value);
        break;
      case PP2_TYPE_AWS:
        if (length >= 1 && value[0] === 0x01) header.awsVpceId ??= text.decode(value.subarray(1));
        break;
      case PP2_TYPE_AZURE:
        if (length === 5 && value[0] === 0x01) header.azureLinkId ??= view.getUint32(at + 1, true);
        break;
      case PP2_TYPE_GCP:
        if (length === 8) header.gcpPscConnectionId ??= view.getBigUint64(at, false);
        break;
    }
  }
  if (crcAt !== -1) {
    const sent = view.getUint32(crcAt, false);
    const computed = crc32c(bytes, crcAt);
    if (sent !== computed) {
      return `v2 CRC32C 0x${sent.toString(16).padStart(8, "0")} does not match the header's ` +
        `0x${computed.toString(16).padStart(8, "0")}`;
    }
  }
  return null;
}

function readSsl(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  length: number,
): ProxySslInfo | string {
  const ssl: ProxySslInfo = { client: bytes[at], verify: view.getUint32(at + 1, false) };
  const subs = splitTlvs(bytes, at + 5, at + length, "SSL sub-TLV");
  if (typeof subs === "string") return subs;
  for (const sub of subs) {
    const value = text.decode(bytes.subarray(sub.at, sub.at + sub.length));
    switch (sub.type) {
      case PP2_SUBTYPE_SSL_VERSION:
        ssl.version ??= value;
        break;
      case PP2_SUBTYPE_SSL_CN:
        ssl.cn ??= value;
        break;
      case PP2_SUBTYPE_SSL_CIPHER:
        ssl.cipher ??= value;
        break;
      case PP2_SUBTYPE_SSL_SIG_ALG:
        ssl.sigAlg ??= value;
        break;
      case PP2_SUBTYPE_SSL_KEY_ALG:
        ssl.keyAlg ??= value;
        break;
    }
  }
  return ssl;
}

// ---- A header in pieces ----------------------------------------------------

/**
 * Reads the PROXY protocol header of one connection from the chunks it
 * arrives in. It holds only bytes of the header (at most
 * `PROXY_V2_MAX_LENGTH`, and for version 1 at most 107): when a chunk
 * completes the header, the bytes after it come back as `rest`, a view of
 * that chunk. A header that arrives whole in one chunk is parsed in place,
 * without a copy.
 *
 * Push until the result is not `"incomplete"`: on `"invalid"` close the
 * connection (the protocol forbids guessing whether a header was meant); on
 * `"complete"` hand `rest` and the following reads to the application. A
 * push after that throws. The reader sets no timer: the specification
 * suggests giving up on a connection whose header is not complete in a few
 * seconds (at least 3, to cover a TCP retransmission).
 *
 * @example
 * ```ts
 * import { encodeProxyHeader, ProxyHeaderReader } from "@x/echo/proxy";
 *
 * const header = encodeProxyHeader({
 *   version: 2,
 *   source: { transport: "tcp", hostname: "2001:db8::1", port: 40000 },
 *   destination: { transport: "tcp", hostname: "2001:db8::2", port: 443 },
 * });
 * const reader = new ProxyHeaderReader();
 * console.log(reader.push(header.subarray(0, 20)).status); // "incomplete"
 * console.log(reader.held); // 20
 * const result = reader.push(header.subarray(20));
 * if (result.status === "complete") console.log(result.header.source);
 * // { transport: "tcp", hostname: "2001:db8::1", port: 40000 }
 * ```
 */
export class ProxyHeaderReader {
  #buffer: Uint8Array | null = null;
  #held = 0;
  #done: "complete" | "invalid" | null = null;

  /** How many bytes of an incomplete header the reader holds now (0 once it is done). */
  get held(): number {
    return this.#held;
  }

  /**
   * Adds the next chunk the connection received and says what the bytes so
   * far are. Throws once the reader has returned `"complete"` or `"invalid"`.
   *
   * @example
   * ```ts
   * import { ProxyHeaderReader } from "@x/echo/proxy";
   *
   * const reader = new ProxyHeaderReader();
   * const result = reader.push(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
   * console.log(result.status); // "invalid": refused on the "G"
   * ```
   */
  push(chunk: Uint8Array): ProxyReadResult {
    if (this.#done !== null) {
      throw new Error(
        `Cannot push a chunk to a finished ProxyHeaderReader: it already returned ` +
          `"${this.#done}"; push only while it returns "incomplete"`,
      );
    }
    if (this.#held === 0) {
      const result = parseProxyHeader(chunk);
      if (result.status === "incomplete") this.#append(chunk);
      return this.#finish(result, chunk, 0);
    }
    const heldBefore = this.#held;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.#wanted(), chunk.length - offset);
      this.#append(chunk.subarray(offset, offset + take));
      offset += take;
      const result = parseProxyHeader(this.#buffer!.subarray(0, this.#held));
      if (result.status !== "incomplete") return this.#finish(result, chunk, heldBefore);
    }
    return INCOMPLETE;
  }

  /** The most bytes the header held so far can still need before it can be decided. */
  #wanted(): number {
    const buffer = this.#buffer!;
    if (buffer[0] !== PROXY_V2_SIGNATURE[0]) return PROXY_V1_MAX_LENGTH - this.#held;
    if (this.#held < 16) return 16 - this.#held;
    return 16 + ((buffer[14] << 8) | buffer[15]) - this.#held;
  }

  #append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const needed = this.#held + bytes.length;
    if (this.#buffer === null || this.#buffer.length < needed) {
      const capacity = Math.min(
        PROXY_V2_MAX_LENGTH,
        Math.max(needed, 2 * (this.#buffer?.length ?? 0), PROXY_V1_MAX_LENGTH),
      );
      const grown = new Uint8Array(capacity);
      if (this.#buffer !== null) grown.set(this.#buffer.subarray(0, this.#held));
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.#held);
    this.#held = needed;
  }

  #finish(result: ProxyParseResult, chunk: Uint8Array, heldBefore: number): ProxyReadResult {
    if (result.status === "incomplete") return result;
    this.#done = result.status;
    this.#buffer = null;
    this.#held = 0;
    if (result.status === "invalid") return result;
    return { ...result, rest: chunk.subarray(result.length - heldBefore) };
  }
}
