/**
 * The PROXY protocol's header as this module hands it out: what a proxy such
 * as HAProxy, an AWS, Azure or Google Cloud load balancer or stunnel puts in
 * front of a connection it relays (HAProxy's `doc/proxy-protocol.txt`,
 * versions 1 and 2), and the protocol's constants.
 *
 * @example What a parsed header looks like
 * ```ts
 * import type { ProxyHeader } from "@x/echo/proxy";
 *
 * const header: ProxyHeader = {
 *   version: 1,
 *   command: "proxy",
 *   protocol: "tcp4",
 *   source: { transport: "tcp", hostname: "192.168.0.1", port: 56324 },
 *   destination: { transport: "tcp", hostname: "192.168.0.11", port: 443 },
 *   tlvs: [],
 * };
 * console.log(header.source);
 * ```
 *
 * @module
 */

/**
 * What the proxy says it relayed: TCP or UDP over IPv4 or IPv6, a Unix
 * stream or datagram socket, or `"unknown"` (version 1's `UNKNOWN`, version
 * 2's unspecified family or protocol, and every `LOCAL` header).
 *
 * @example
 * ```ts
 * import type { ProxyTransport } from "@x/echo/proxy";
 *
 * const overUdp = (protocol: ProxyTransport): boolean =>
 *   protocol === "udp4" || protocol === "udp6";
 * console.log(overUdp("udp6")); // true
 * ```
 */
export type ProxyTransport =
  | "tcp4"
  | "tcp6"
  | "udp4"
  | "udp6"
  | "unix-stream"
  | "unix-dgram"
  | "unknown";

/**
 * One version 2 Type-Length-Value vector: its type byte and its value (at
 * most 65,535 bytes). The parser hands out a copy of the value.
 *
 * @example An authority (SNI) TLV
 * ```ts
 * import { PP2_TYPE_AUTHORITY, type ProxyTlv } from "@x/echo/proxy";
 *
 * const tlv: ProxyTlv = {
 *   type: PP2_TYPE_AUTHORITY,
 *   value: new TextEncoder().encode("example.com"),
 * };
 * console.log(tlv.value.length); // 11
 * ```
 */
export interface ProxyTlv {
  /** The type byte, 0 to 255 (see the `PP2_TYPE_*` constants). */
  type: number;
  /** The value bytes. */
  value: Uint8Array;
}

/**
 * What the SSL TLV (`PP2_TYPE_SSL`, 0x20) says about the client's TLS
 * connection to the proxy.
 *
 * @example
 * ```ts
 * import { PP2_CLIENT_SSL, type ProxySslInfo } from "@x/echo/proxy";
 *
 * const ssl: ProxySslInfo = { client: PP2_CLIENT_SSL, verify: 0, version: "TLSv1.3" };
 * console.log((ssl.client & PP2_CLIENT_SSL) !== 0); // true: the client used TLS
 * ```
 */
export interface ProxySslInfo {
  /** Bit field: `PP2_CLIENT_SSL` (1), `PP2_CLIENT_CERT_CONN` (2), `PP2_CLIENT_CERT_SESS` (4). */
  client: number;
  /** 0 when the client presented a certificate and it was verified, otherwise not 0. */
  verify: number;
  /** The TLS version, such as `"TLSv1.3"` (sub-TLV 0x21). */
  version?: string;
  /** The client certificate's Common Name (sub-TLV 0x22). */
  cn?: string;
  /** The cipher, such as `"ECDHE-RSA-AES128-GCM-SHA256"` (sub-TLV 0x23). */
  cipher?: string;
  /** The algorithm that signed the proxy's certificate, such as `"RSA-SHA256"` (sub-TLV 0x24). */
  sigAlg?: string;
  /** The algorithm of the proxy certificate's key, such as `"RSA2048"` (sub-TLV 0x25). */
  keyAlg?: string;
}

/**
 * A PROXY protocol header, version 1 (text) or 2 (binary), as
 * `parseProxyHeader` and `ProxyHeaderReader` hand it out.
 *
 * `source` and `destination` are `null` for a `LOCAL` header (the proxy's own
 * connection, such as a health check: use the connection's real addresses),
 * for version 1's `UNKNOWN` and for version 2's unspecified family or
 * protocol. IP addresses are `Deno.NetAddr`s with the transport of the
 * relayed protocol (`"tcp"` or `"udp"`) and IPv6 host names in the text Deno
 * prints (`"2001:db8::1"`, `"::ffff:192.0.2.1"`); Unix addresses are
 * `Deno.UnixAddr`s with transport `"unix"` and the path up to its first NUL
 * byte (so an abstract socket's path reads as `""`).
 *
 * @example
 * ```ts
 * import { parseProxyHeader } from "@x/echo/proxy";
 *
 * const bytes = new TextEncoder().encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
 * const result = parseProxyHeader(bytes);
 * if (result.status === "complete") {
 *   const { source } = result.header;
 *   if (source?.transport === "tcp") console.log(source.hostname, source.port);
 * }
 * ```
 */
export interface ProxyHeader {
  /** 1 for the text header, 2 for the binary one. */
  version: 1 | 2;
  /** `"proxy"`: a relayed connection; `"local"`: the proxy's own (a health check), no addresses. */
  command: "proxy" | "local";
  /** What the proxy says it relayed. */
  protocol: ProxyTransport;
  /** The original client; `null` for LOCAL, UNKNOWN and unspecified. */
  source: Deno.NetAddr | Deno.UnixAddr | null;
  /** The address the client connected to; `null` likewise. */
  destination: Deno.NetAddr | Deno.UnixAddr | null;
  /** Every version 2 TLV in order, as read (NOOP and unknown types included); empty for v1. */
  tlvs: ProxyTlv[];
  /** The ALPN TLV (0x01), as text: the protocol the client negotiated, such as `"h2"`. */
  alpn?: string;
  /** The authority TLV (0x02): the host name the client asked for (TLS SNI). */
  authority?: string;
  /** The unique ID TLV (0x05): up to 128 opaque bytes naming the connection. */
  uniqueId?: Uint8Array;
  /** The network namespace TLV (0x30). */
  netns?: string;
  /** The SSL TLV (0x20) and its sub-TLVs. */
  ssl?: ProxySslInfo;
  /** AWS's VPC endpoint ID (`PP2_TYPE_AWS` 0xEA, subtype 0x01). */
  awsVpceId?: string;
  /** Azure's Private Link ID (`PP2_TYPE_AZURE` 0xEE, subtype 0x01, 32-bit little endian). */
  azureLinkId?: number;
  /** Google Cloud's Private Service Connect connection ID (`PP2_TYPE_GCP` 0xE0, 64-bit). */
  gcpPscConnectionId?: bigint;
}

/**
 * The longest version 1 line, CRLF included: `"PROXY UNKNOWN "` and two
 * 39-character IPv6 addresses and two 5-digit ports. A line without its
 * CRLF in this many bytes is invalid.
 *
 * @example
 * ```ts
 * import { PROXY_V1_MAX_LENGTH } from "@x/echo/proxy";
 *
 * console.log(PROXY_V1_MAX_LENGTH); // 107
 * ```
 */
export const PROXY_V1_MAX_LENGTH = 107;

/**
 * The longest version 2 header: 16 fixed bytes and a 16-bit length.
 *
 * @example
 * ```ts
 * import { PROXY_V2_MAX_LENGTH } from "@x/echo/proxy";
 *
 * console.log(PROXY_V2_MAX_LENGTH); // 65551
 * ```
 */
export const PROXY_V2_MAX_LENGTH: number = 16 + 65535;

/**
 * The 12 bytes every version 2 header starts with:
 * `\r\n\r\n\0\r\nQUIT\n`. Treat it as read-only.
 *
 * @example
 * ```ts
 * import { PROXY_V2_SIGNATURE } from "@x/echo/proxy";
 *
 * const chunk = new Uint8Array(16);
 * const isV2 = PROXY_V2_SIGNATURE.every((byte, i) => chunk[i] === byte);
 * console.log(isV2); // false
 * ```
 */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

/**
 * TLV type: Application-Layer Protocol Negotiation (ALPN).
 *
 * @example
 * ```ts
 * import { encodeProxyHeader, PP2_TYPE_ALPN } from "@x/echo/proxy";
 *
 * const header = encodeProxyHeader({
 *   version: 2,
 *   tlvs: [{ type: PP2_TYPE_ALPN, value: new TextEncoder().encode("h2") }],
 * });
 * console.log(header.length); // 21
 * ```
 */
export const PP2_TYPE_ALPN = 0x01;
/**
 * TLV type: the authority, the host name the client asked for (TLS SNI).
 *
 * @example
 * ```ts
 * import { PP2_TYPE_AUTHORITY } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_AUTHORITY); // 2
 * ```
 */
export const PP2_TYPE_AUTHORITY = 0x02;
/**
 * TLV type: the CRC32C checksum of the whole header, computed with this
 * field zeroed. The parser verifies it; `encodeProxyHeader`'s `crc32c`
 * option adds it.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_CRC32C } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_CRC32C); // 3
 * ```
 */
export const PP2_TYPE_CRC32C = 0x03;
/**
 * TLV type: padding, ignored.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_NOOP } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_NOOP); // 4
 * ```
 */
export const PP2_TYPE_NOOP = 0x04;
/**
 * TLV type: an opaque ID of up to 128 bytes for the connection.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_UNIQUE_ID } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_UNIQUE_ID); // 5
 * ```
 */
export const PP2_TYPE_UNIQUE_ID = 0x05;
/**
 * TLV type: the client's TLS connection (client bits, verify result, sub-TLVs).
 *
 * @example
 * ```ts
 * import { PP2_TYPE_SSL } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_SSL); // 32
 * ```
 */
export const PP2_TYPE_SSL = 0x20;
/**
 * TLV type: the network namespace's name.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_NETNS } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_NETNS); // 48
 * ```
 */
export const PP2_TYPE_NETNS = 0x30;
/**
 * TLV type (custom range): Google Cloud's Private Service Connect connection ID.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_GCP } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_GCP); // 224
 * ```
 */
export const PP2_TYPE_GCP = 0xe0;
/**
 * TLV type (custom range): AWS; subtype 0x01 is the VPC endpoint ID.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_AWS } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_AWS); // 234
 * ```
 */
export const PP2_TYPE_AWS = 0xea;
/**
 * TLV type (custom range): Azure; subtype 0x01 is the Private Link ID.
 *
 * @example
 * ```ts
 * import { PP2_TYPE_AZURE } from "@x/echo/proxy";
 *
 * console.log(PP2_TYPE_AZURE); // 238
 * ```
 */
export const PP2_TYPE_AZURE = 0xee;
/**
 * `ProxySslInfo.client` bit: the client connected over TLS.
 *
 * @example
 * ```ts
 * import { PP2_CLIENT_SSL } from "@x/echo/proxy";
 *
 * console.log((0x05 & PP2_CLIENT_SSL) !== 0); // true
 * ```
 */
export const PP2_CLIENT_SSL = 0x01;
/**
 * `ProxySslInfo.client` bit: the client presented a certificate on this connection.
 *
 * @example
 * ```ts
 * import { PP2_CLIENT_CERT_CONN } from "@x/echo/proxy";
 *
 * console.log(PP2_CLIENT_CERT_CONN); // 2
 * ```
 */
export const PP2_CLIENT_CERT_CONN = 0x02;
/**
 * `ProxySslInfo.client` bit: the client presented a certificate once in this TLS session.
 *
 * @example
 * ```ts
 * import { PP2_CLIENT_CERT_SESS } from "@x/echo/proxy";
 *
 * console.log(PP2_CLIENT_CERT_SESS); // 4
 * ```
 */
export const PP2_CLIENT_CERT_SESS = 0x04;
