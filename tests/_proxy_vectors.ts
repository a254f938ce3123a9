/**
 * PROXY protocol headers written out by hand (and four captured from
 * HAProxy 2.6), shared by `proxy_header_test.ts` and `proxy_fuzz_test.ts`.
 * Built without the module's encoder, so that the encoder and the parser
 * cannot share a mistake unseen.
 */

/** The version 2 signature, written out. */
export const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** Concatenates byte lists and ASCII strings. */
export function bytes(...parts: (number[] | string | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "string") { for (const c of part) out.push(c.charCodeAt(0)); }
    else for (const byte of part) out.push(byte);
  }
  return new Uint8Array(out);
}

/** Hex text (white space ignored) as bytes. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

/** A 16-bit big-endian length as two bytes. */
export function u16(n: number): number[] {
  return [n >> 8, n & 0xff];
}

/** A TLV: type, 16-bit length, value. */
export function tlv(type: number, value: number[] | string): number[] {
  const v = typeof value === "string" ? [...value].map((c) => c.charCodeAt(0)) : value;
  return [type, ...u16(v.length), ...v];
}

/** A version 2 header: signature, version/command, family, length of `body`, `body`. */
export function v2(verCmd: number, fam: number, ...body: number[][]): Uint8Array {
  const flat = body.flat();
  return bytes(SIG, [verCmd, fam], u16(flat.length), flat);
}

/** 192.168.0.1:56324 → 192.168.0.11:443, TCP over IPv4 (the spec's v1 example, in v2). */
export const V2_TCP4: Uint8Array = bytes(
  SIG,
  [0x21, 0x11, 0x00, 0x0c],
  [192, 168, 0, 1],
  [192, 168, 0, 11],
  [0xdc, 0x04], // 56324
  [0x01, 0xbb], // 443
);

/** 2001:db8::1 port 5353 → ::ffff:192.0.2.1 port 53, UDP over IPv6. */
export const V2_UDP6: Uint8Array = bytes(
  SIG,
  [0x21, 0x22, 0x00, 0x24],
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01],
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1],
  [0x14, 0xe9], // 5353
  [0x00, 0x35], // 53
);

/** A 108-byte Unix path field. */
export function unixPath(path: string): number[] {
  const field = new Array<number>(108).fill(0);
  [...path].forEach((c, i) => field[i] = c.charCodeAt(0));
  return field;
}

/** /run/client.sock → /run/server.sock, a Unix stream socket. */
export const V2_UNIX: Uint8Array = v2(
  0x21,
  0x31,
  unixPath("/run/client.sock"),
  unixPath("/run/server.sock"),
);

/** PROXY with an unspecified family and protocol, no address block. */
export const V2_UNSPEC: Uint8Array = bytes(SIG, [0x21, 0x00, 0x00, 0x00]);

/** LOCAL without addresses (a health check). */
export const V2_LOCAL: Uint8Array = bytes(SIG, [0x20, 0x00, 0x00, 0x00]);

/** LOCAL with an IPv4 address block, which the receiver must skip. */
export const V2_LOCAL_WITH_ADDRESSES: Uint8Array = v2(
  0x20,
  0x11,
  [10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x50],
);

/** TCP over IPv4 with one of each TLV the module decodes, and a NOOP. */
export const V2_TLVS: Uint8Array = v2(
  0x21,
  0x11,
  [203, 0, 113, 9, 198, 51, 100, 7, 0xee, 0x48, 0x01, 0xbb], // :61000 → :443
  tlv(0x01, "h2"),
  tlv(0x02, "example.com"),
  tlv(0x05, [0xde, 0xad, 0xbe, 0xef]),
  tlv(0x04, [0, 0, 0]),
  tlv(0x20, [
    0x07, // client: SSL, cert on this connection, cert in the session
    0x00,
    0x00,
    0x00,
    0x00, // verify: 0, verified
    ...tlv(0x21, "TLSv1.3"),
    ...tlv(0x22, "client.example"),
    ...tlv(0x23, "TLS_AES_128_GCM_SHA256"),
    ...tlv(0x24, "RSA-SHA256"),
    ...tlv(0x25, "RSA2048"),
  ]),
  tlv(0x30, "blue"),
  tlv(0xea, "\x01vpce-08d2bf15fac5001c9"), // AWS, subtype 1: the VPC endpoint ID
  tlv(0xee, [0x01, 0x78, 0x56, 0x34, 0x12]), // Azure link ID 0x12345678, little endian
  tlv(0xe0, [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]), // GCP, big endian
  tlv(0xf0, [0x99]), // experimental: kept, not decoded
);

/**
 * 127.0.0.1:12345 → 127.0.0.2:80 with a CRC32C TLV, its checksum 0x85d309ff
 * computed apart from this module (a bitwise CRC32C in Python).
 */
export const V2_CRC_GOOD: Uint8Array = v2(
  0x21,
  0x11,
  [127, 0, 0, 1, 127, 0, 0, 2, 0x30, 0x39, 0x00, 0x50],
  tlv(0x03, [0x85, 0xd3, 0x09, 0xff]),
);

/** HAProxy 2.6, `send-proxy-v2 proxy-v2-options crc32c,unique-id`: TCP4, CRC32C, unique ID. */
export const HAPROXY_V2_TCP4: Uint8Array = hex(
  "0d0a0d0a000d0a515549540a2111001f7f0000017f000001bbfd47e10300047053f5fa0500096162632d3438313235",
);

/** HAProxy 2.6, `send-proxy`: 127.0.0.1:39777 → 127.0.0.1:18402. */
export const HAPROXY_V1_TCP4: Uint8Array = bytes("PROXY TCP4 127.0.0.1 127.0.0.1 39777 18402\r\n");

/** HAProxy 2.6, `send-proxy-v2` from an IPv6 frontend: [::1]:42381 → [::1]:18403. */
export const HAPROXY_V2_TCP6: Uint8Array = hex(
  "0d0a0d0a000d0a515549540a21210024" + "00".repeat(15) + "01" + "00".repeat(15) + "01" +
    "a58d47e3",
);

/** HAProxy 2.6, a health check with `check-send-proxy` and crc32c: LOCAL, UNSPEC, one CRC TLV. */
export const HAPROXY_V2_LOCAL_CHECK: Uint8Array = hex(
  "0d0a0d0a000d0a515549540a20000007030004a9b87e8f",
);

/** Version 1 lines the specification describes. */
export const V1_TCP4: Uint8Array = bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
export const V1_TCP6: Uint8Array = bytes(
  "PROXY TCP6 2001:DB8:0:0:0:0:0:1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 0\r\n",
);
export const V1_UNKNOWN: Uint8Array = bytes("PROXY UNKNOWN\r\n");
/** The spec's worst case: exactly 107 bytes. */
export const V1_LONGEST: Uint8Array = bytes(
  "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " +
    "65535 65535\r\n",
);

/** Every valid header above, named. */
export const VALID: [string, Uint8Array][] = [
  ["v1 TCP4", V1_TCP4],
  ["v1 TCP6", V1_TCP6],
  ["v1 UNKNOWN", V1_UNKNOWN],
  ["v1 longest", V1_LONGEST],
  ["v2 TCP4", V2_TCP4],
  ["v2 UDP6", V2_UDP6],
  ["v2 UNIX", V2_UNIX],
  ["v2 UNSPEC", V2_UNSPEC],
  ["v2 LOCAL", V2_LOCAL],
  ["v2 LOCAL with addresses", V2_LOCAL_WITH_ADDRESSES],
  ["v2 TLVs", V2_TLVS],
  ["v2 CRC32C", V2_CRC_GOOD],
  ["HAProxy v2 TCP4", HAPROXY_V2_TCP4],
  ["HAProxy v1 TCP4", HAPROXY_V1_TCP4],
  ["HAProxy v2 TCP6", HAPROXY_V2_TCP6],
  ["HAProxy v2 LOCAL check", HAPROXY_V2_LOCAL_CHECK],
];
