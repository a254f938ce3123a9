/**
 * The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2)
 * without I/O: read the header a proxy or load balancer puts in front of a
 * connection it relays (`parseProxyHeader`, or `ProxyHeaderReader` for one
 * that arrives in pieces), write one (`encodeProxyHeader`), and decide which
 * peers may send it (`parseCidrList`).
 *
 * The receiver must expect the header on every connection of a listener
 * configured for it, and never guess whether one is there: a client allowed
 * to send it can claim any address. So take it only from trusted proxies,
 * close the connection on `"invalid"`, and give up on one whose header is
 * not complete within a few seconds.
 *
 * @example Reading the header before the application sees the connection
 * ```ts
 * import { encodeProxyHeader, parseCidrList, ProxyHeaderReader } from "@x/echo/proxy";
 *
 * const trusted = parseCidrList("127.0.0.0/8,::1");
 * const peer = "127.0.0.1"; // the connection's remote address
 * if (!trusted.includes(peer)) throw new Error(`Cannot accept ${peer}: it is not a trusted proxy`);
 *
 * // What the proxy sends first: a version 2 header, then the client's data.
 * const header = encodeProxyHeader({
 *   version: 2,
 *   source: { transport: "tcp", hostname: "203.0.113.9", port: 61000 },
 *   destination: { transport: "tcp", hostname: "198.51.100.7", port: 443 },
 * });
 * const firstRead = new Uint8Array([...header, ...new TextEncoder().encode("hello")]);
 *
 * const reader = new ProxyHeaderReader();
 * const result = reader.push(firstRead);
 * if (result.status === "complete") {
 *   console.log(result.header.source); // { transport: "tcp", hostname: "203.0.113.9", port: 61000 }
 *   console.log(new TextDecoder().decode(result.rest)); // "hello"
 * }
 * ```
 *
 * @module
 */

export type { ProxyHeader, ProxySslInfo, ProxyTlv, ProxyTransport } from "./header.ts";
export {
  PP2_CLIENT_CERT_CONN,
  PP2_CLIENT_CERT_SESS,
  PP2_CLIENT_SSL,
  PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_AWS,
  PP2_TYPE_AZURE,
  PP2_TYPE_CRC32C,
  PP2_TYPE_GCP,
  PP2_TYPE_NETNS,
  PP2_TYPE_NOOP,
  PP2_TYPE_SSL,
  PP2_TYPE_UNIQUE_ID,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
} from "./header.ts";
export type { ProxyParseResult, ProxyReadResult } from "./parse.ts";
export { parseProxyHeader, ProxyHeaderReader } from "./parse.ts";
export type { ProxyHeaderOptions } from "./encode.ts";
export { encodeProxyHeader } from "./encode.ts";
export type { CidrList } from "./trusted.ts";
export { parseCidrList } from "./trusted.ts";
