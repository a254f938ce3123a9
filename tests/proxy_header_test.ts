/**
 * The PROXY protocol module (`src/proxy/`) against the specification's
 * examples, hand-written version 2 vectors and headers captured from
 * HAProxy: parsing, early refusal, reading in pieces, encoding and the
 * trusted-proxy list.
 */

import { assert, assertEquals, assertStrictEquals, assertThrows } from "@std/assert";
import {
  encodeProxyHeader,
  parseCidrList,
  parseProxyHeader,
  PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NOOP,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  type ProxyHeaderOptions,
  ProxyHeaderReader,
  type ProxyParseResult,
} from "../src/proxy/mod.ts";
import { crc32c } from "../src/proxy/_crc32c.ts";
import { assertStdStyle } from "./_error_style.ts";
import {
  bytes,
  HAPROXY_V1_TCP4,
  HAPROXY_V2_LOCAL_CHECK,
  HAPROXY_V2_TCP4,
  HAPROXY_V2_TCP6,
  SIG,
  tlv,
  u16,
  V1_LONGEST,
  V1_TCP4,
  V1_TCP6,
  V1_UNKNOWN,
  v2,
  V2_CRC_GOOD,
  V2_LOCAL,
  V2_LOCAL_WITH_ADDRESSES,
  V2_TCP4,
  V2_TLVS,
  V2_UDP6,
  V2_UNIX,
  V2_UNSPEC,
  VALID,
} from "./_proxy_vectors.ts";

const DATA = bytes("GET / HTTP/1.1\r\n\r\n");

function concat(...parts: Uint8Array[]): Uint8Array {
  return bytes(...parts);
}

/** The header of a complete result; fails on any other. */
function complete(input: Uint8Array): { header: ProxyHeader; length: number } {
  const result = parseProxyHeader(input);
  if (result.status !== "complete") {
    throw new Error(`expected complete, got ${JSON.stringify(result)}`);
  }
  return result;
}

/** The reason of an invalid result; fails on any other. */
function invalid(input: Uint8Array): string {
  const result = parseProxyHeader(input);
  if (result.status !== "invalid") {
    throw new Error(
      `expected invalid for ${JSON.stringify(String.fromCharCode(...input))}, ` +
        `got ${result.status}`,
    );
  }
  return result.reason;
}

/** `result` when complete; fails otherwise. */
function completed<T extends { status: string }>(result: T): Extract<T, { status: "complete" }> {
  if (result.status !== "complete") {
    throw new Error(`expected complete, got ${JSON.stringify(result)}`);
  }
  return result as Extract<T, { status: "complete" }>;
}

/** The length of the shortest prefix of `input` found invalid, or -1. */
function refusedAfter(input: Uint8Array): number {
  for (let n = 0; n <= input.length; n++) {
    if (parseProxyHeader(input.subarray(0, n)).status === "invalid") return n;
  }
  return -1;
}

const tcp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});
const udp = (hostname: string, port: number): Deno.NetAddr => ({
  transport: "udp",
  hostname,
  port,
});

// ---- Version 1 ------------------------------------------------------------------------------

Deno.test("v1: the specification's TCP4 example, with the request after it", () => {
  const { header, length } = complete(concat(V1_TCP4, DATA));
  assertEquals(length, V1_TCP4.length);
  assertEquals(header, {
    version: 1,
    command: "proxy",
    protocol: "tcp4",
    source: tcp("192.168.0.1", 56324),
    destination: tcp("192.168.0.11", 443),
    tlvs: [],
  });
});

Deno.test("v1: TCP6 in either case and uncompressed, given in the text Deno prints", () => {
  const { header, length } = complete(V1_TCP6);
  assertEquals(length, V1_TCP6.length);
  assertEquals(header.protocol, "tcp6");
  assertEquals(header.source, tcp("2001:db8::1", 65535));
  assertEquals(header.destination, tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0));
  const mapped = complete(bytes("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n")).header;
  assertEquals(mapped.source, tcp("::ffff:192.0.2.1", 1));
  assertEquals(mapped.destination, tcp("::1", 2));
});

Deno.test("v1: UNKNOWN, short and with anything up to the CRLF", () => {
  for (
    const line of [
      V1_UNKNOWN,
      bytes("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
      bytes("PROXY UNKNOWN whatever \x01\xff\r\n"),
    ]
  ) {
    const { header, length } = complete(concat(line, DATA));
    assertEquals(length, line.length);
    assertEquals(header, {
      version: 1,
      command: "proxy",
      protocol: "unknown",
      source: null,
      destination: null,
      tlvs: [],
    });
  }
});

Deno.test("v1: a 107-byte line is accepted, 108 bytes refused with or without its CRLF", () => {
  assertEquals(V1_LONGEST.length, PROXY_V1_MAX_LENGTH);
  assertEquals(complete(V1_LONGEST).length, 107);
  const longer = bytes("PROXY UNKNOWN ", "f".repeat(92), "\r\n");
  assertEquals(longer.length, 108);
  assertEquals(invalid(longer), "v1 header longer than 107 bytes");
  // Refused once 106 bytes hold no CR: a CR at byte 107 would make the line 108 long.
  assertEquals(refusedAfter(longer), 106);
  assertEquals(parseProxyHeader(longer.subarray(0, 105)).status, "incomplete");
  // The longest TCP6 line the spec names (104 bytes) is fine.
  const f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const tcp6 = bytes(`PROXY TCP6 ${f} ${f} 65535 65535\r\n`);
  assertEquals(tcp6.length, 104);
  assertEquals(complete(tcp6).length, 104);
});

Deno.test("v1: anything but the exact grammar is invalid, naming what is wrong", () => {
  const cases: [string, string][] = [
    ["PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 'v1 source address "01.2.3.4" is not an IPv4 address'],
    ["PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", 'v1 destination address "5.6.7.256"'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n", 'v1 source port "0443"'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", 'v1 destination port "65536"'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 'v1 source port "-1"'],
    ["PROXY TCP4 ::1 ::2 1 2\r\n", 'v1 source address "::1" is not an IPv4 address'],
    ["PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", 'v1 source address "1.2.3.4" is not an IPv6 address'],
    ["PROXY TCP6 1::2::3 ::1 1 2\r\n", 'v1 source address "1::2::3"'],
    ["PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n", 'v1 destination address "fe80::1%eth0"'],
    ["PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 'v1 source address ""'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1 TCP4 header has more than 4 fields"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1 TCP4 header has 3 of its 4 fields"],
    ["PROXY TCP4\r\n", "v1 TCP4 header has no addresses"],
    ["PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 'v1 protocol "tcp4" is not TCP4, TCP6 or UNKNOWN'],
    ["PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 'v1 protocol "TCP5"'],
    ["PROXY UNKNOWNX\r\n", 'v1 protocol "UNKNOWNX"'],
    ["PROXY  UNKNOWN\r\n", 'v1 protocol ""'],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1 header has a line feed without a carriage return"],
    ["PROXY UNKNOWN\n", "v1 header has a line feed without a carriage return"],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "v1 header has a carriage return without a line feed"],
    ["PROXY UNKNOWN\r\r\n", "v1 header has a carriage return without a line feed"],
    ["PROXY\r\n", "not a PROXY protocol header"],
  ];
  for (const [line, reason] of cases) {
    const got = invalid(bytes(line));
    assert(got.startsWith(reason), `${JSON.stringify(line)}: ${JSON.stringify(got)}`);
  }
});

Deno.test("v1: a field that can no longer be valid is refused before the CRLF comes", () => {
  const cases: [string, number][] = [
    ["PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 99999".length],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 01".length],
    ["PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.400".length],
    ["PROXY TCP4 ::1 ::2 1 2\r\n", "PROXY TCP4 :".length],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXY TCP6 1.".length],
    ["PROXY TCPX", "PROXY TCPX".length],
    ["PROXY UNKNOWNx", "PROXY UNKNOWNx".length],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ".length],
  ];
  for (const [line, at] of cases) {
    assertEquals(refusedAfter(bytes(line)), at, line);
  }
});

// ---- Version 2 ------------------------------------------------------------------------------

Deno.test("v2: TCP over IPv4, written out by hand", () => {
  const { header, length } = complete(concat(V2_TCP4, DATA));
  assertEquals(length, 28);
  assertEquals(header, {
    version: 2,
    command: "proxy",
    protocol: "tcp4",
    source: tcp("192.168.0.1", 56324),
    destination: tcp("192.168.0.11", 443),
    tlvs: [],
  });
});

Deno.test("v2: UDP over IPv6, with an IPv4-mapped destination in Deno's text", () => {
  const { header, length } = complete(V2_UDP6);
  assertEquals(length, 52);
  assertEquals(header.protocol, "udp6");
  assertEquals(header.source, udp("2001:db8::1", 5353));
  assertEquals(header.destination, udp("::ffff:192.0.2.1", 53));
});

Deno.test("v2: Unix stream and datagram sockets, paths up to the first NUL", () => {
  const { header, length } = complete(V2_UNIX);
  assertEquals(length, 16 + 216);
  assertEquals(header.protocol, "unix-stream");
  assertEquals(header.source, { transport: "unix", path: "/run/client.sock" });
  assertEquals(header.destination, { transport: "unix", path: "/run/server.sock" });
  const dgram = V2_UNIX.slice();
  dgram[13] = 0x32;
  assertEquals(complete(dgram).header.protocol, "unix-dgram");
  // A path of all 108 bytes, no NUL.
  const full = v2(0x21, 0x31, new Array(108).fill(0x61), new Array(108).fill(0x62));
  const { source } = complete(full).header;
  assertEquals(source, { transport: "unix", path: "a".repeat(108) });
});

Deno.test("v2: PROXY with an unspecified family or protocol is unknown, addresses ignored", () => {
  assertEquals(complete(V2_UNSPEC).header, {
    version: 2,
    command: "proxy",
    protocol: "unknown",
    source: null,
    destination: null,
    tlvs: [],
  });
  // INET with an unspecified protocol, and unspecified with STREAM: no address block is read.
  for (const fam of [0x10, 0x20, 0x01, 0x02]) {
    const { header, length } = complete(v2(0x21, fam, [1, 2, 3, 4, 5]));
    assertEquals([header.protocol, header.source, length], ["unknown", null, 21]);
    assertEquals(header.tlvs, [], "five bytes that are no TLV are ignored");
  }
});

Deno.test("v2: LOCAL, with and without addresses: the address block is skipped", () => {
  const local = complete(concat(V2_LOCAL, DATA));
  assertEquals(local.length, 16);
  assertEquals(local.header, {
    version: 2,
    command: "local",
    protocol: "unknown",
    source: null,
    destination: null,
    tlvs: [],
  });
  const withAddresses = complete(V2_LOCAL_WITH_ADDRESSES);
  assertEquals(withAddresses.length, 28);
  assertEquals(withAddresses.header.command, "local");
  assertEquals(withAddresses.header.source, null);
  assertEquals(withAddresses.header.protocol, "unknown");
  // A LOCAL header whose family is set may still leave the addresses out (length 0)...
  assertEquals(complete(bytes(SIG, [0x20, 0x21, 0, 0])).length, 16);
  // ...and TLVs after a skipped address block are read.
  const withTlv = complete(v2(0x20, 0x11, new Array(12).fill(0), tlv(PP2_TYPE_AUTHORITY, "a.b")));
  assertEquals(withTlv.header.authority, "a.b");
  // But an address block that is there only in part is refused.
  assertEquals(
    invalid(v2(0x20, 0x11, [1, 2, 3, 4])),
    "v2 address block of 12 bytes does not fit in length 4",
  );
});

Deno.test("v2: every TLV decoded, all listed in order, values copied", () => {
  const input = V2_TLVS.slice();
  const { header, length } = complete(input);
  assertEquals(length, input.length);
  assertEquals(header.source, tcp("203.0.113.9", 61000));
  assertEquals(header.alpn, "h2");
  assertEquals(header.authority, "example.com");
  assertEquals(header.uniqueId, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
  assertEquals(header.ssl, {
    client: 7,
    verify: 0,
    version: "TLSv1.3",
    cn: "client.example",
    cipher: "TLS_AES_128_GCM_SHA256",
    sigAlg: "RSA-SHA256",
    keyAlg: "RSA2048",
  });
  assertEquals(header.netns, "blue");
  assertEquals(header.awsVpceId, "vpce-08d2bf15fac5001c9");
  assertEquals(header.azureLinkId, 0x12345678);
  assertEquals(header.gcpPscConnectionId, 0x0102030405060708n);
  assertEquals(header.tlvs.map((t) => t.type), [
    0x01,
    0x02,
    0x05,
    0x04,
    0x20,
    0x30,
    0xea,
    0xee,
    0xe0,
    0xf0,
  ]);
  assertEquals(header.tlvs[3].value, new Uint8Array(3), "NOOP is listed");
  assertEquals(header.tlvs[9].value, new Uint8Array([0x99]), "an unknown type is listed");
  input.fill(0);
  assertEquals(header.alpn, "h2");
  assertEquals(header.tlvs[0].value, bytes("h2"), "values are copies, not views of the input");
  assertEquals(header.uniqueId, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
});

Deno.test("v2: a verify failure and an SSL TLV without sub-TLVs", () => {
  const { header } = complete(v2(0x21, 0x00, tlv(0x20, [0x01, 0x00, 0x00, 0x00, 0x05])));
  assertEquals(header.ssl, { client: 1, verify: 5 });
});

Deno.test("v2: custom TLVs of another subtype or size are listed but not decoded", () => {
  const { header } = complete(
    v2(0x21, 0x00, tlv(0xea, "\x02x"), tlv(0xee, [0x01, 1, 2, 3]), tlv(0xe0, [1, 2, 3])),
  );
  assertEquals([header.awsVpceId, header.azureLinkId, header.gcpPscConnectionId], [
    undefined,
    undefined,
    undefined,
  ]);
  assertEquals(header.tlvs.length, 3);
});

Deno.test("v2: CRC32C, checked against a value computed apart from the module", () => {
  assertEquals(crc32c(bytes("123456789")), 0xe3069283, "RFC 4960's check value");
  assertEquals(complete(V2_CRC_GOOD).header.tlvs, [{
    type: PP2_TYPE_CRC32C,
    value: new Uint8Array([0x85, 0xd3, 0x09, 0xff]),
  }]);
  const bad = V2_CRC_GOOD.slice();
  bad[bad.length - 1] ^= 1;
  assertEquals(invalid(bad), "v2 CRC32C 0x85d309fe does not match the header's 0x85d309ff");
  const flipped = V2_CRC_GOOD.slice();
  flipped[16] ^= 0x80; // the source address
  assert(invalid(flipped).startsWith("v2 CRC32C 0x85d309ff does not match"));
  assertEquals(
    invalid(v2(0x21, 0x00, tlv(0x03, [1, 2, 3]))),
    "v2 CRC32C TLV has 3 bytes, not 4",
  );
});

Deno.test("v2: headers HAProxy 2.6 sent, with CRC32C and unique ID, LOCAL for a check", () => {
  const v4 = complete(HAPROXY_V2_TCP4).header;
  assertEquals(v4.source, tcp("127.0.0.1", 48125));
  assertEquals(v4.destination, tcp("127.0.0.1", 18401));
  assertEquals(new TextDecoder().decode(v4.uniqueId), "abc-48125");
  assertEquals(v4.tlvs.map((t) => t.type), [PP2_TYPE_CRC32C, 0x05]);
  const v6 = complete(HAPROXY_V2_TCP6).header;
  assertEquals([v6.source, v6.destination], [tcp("::1", 42381), tcp("::1", 18403)]);
  const line = complete(HAPROXY_V1_TCP4).header;
  assertEquals([line.source, line.destination], [
    tcp("127.0.0.1", 39777),
    tcp("127.0.0.1", 18402),
  ]);
  const check = complete(HAPROXY_V2_LOCAL_CHECK).header;
  assertEquals([check.command, check.protocol, check.source], ["local", "unknown", null]);
  assertEquals(check.tlvs.map((t) => t.type), [PP2_TYPE_CRC32C], "its checksum is checked");
  const bad = HAPROXY_V2_LOCAL_CHECK.slice();
  bad[bad.length - 1] ^= 0xff;
  assert(invalid(bad).startsWith("v2 CRC32C"));
});

Deno.test("v2: version, command, family, protocol and lengths are refused as soon as read", () => {
  const head = (verCmd: number, fam: number, length: number) =>
    bytes(SIG, [verCmd, fam], u16(length), new Array(300).fill(0));
  const cases: [Uint8Array, number, string][] = [
    [head(0x11, 0x11, 12), 13, "v2 header has version 1, not 2"],
    [head(0x31, 0x11, 12), 13, "v2 header has version 3, not 2"],
    [head(0x22, 0x11, 12), 13, "v2 header has command 2, neither LOCAL (0) nor PROXY (1)"],
    [head(0x2f, 0x11, 12), 13, "v2 header has command 15"],
    [head(0x21, 0x41, 12), 14, "v2 header has address family 4"],
    [head(0x20, 0xf0, 0), 14, "v2 header has address family 15"],
    [head(0x21, 0x13, 12), 14, "v2 header has transport protocol 3"],
    [head(0x21, 0x11, 4), 16, "v2 address block of 12 bytes does not fit in length 4"],
    [head(0x21, 0x21, 35), 16, "v2 address block of 36 bytes does not fit in length 35"],
    [head(0x21, 0x31, 0), 16, "v2 address block of 216 bytes does not fit in length 0"],
  ];
  for (const [input, at, reason] of cases) {
    assertEquals(refusedAfter(input), at, reason);
    const got = invalid(input);
    assert(got.startsWith(reason), got);
  }
});

Deno.test("v2: TLVs must fill the length exactly, and nested SSL TLVs the SSL TLV", () => {
  const addresses = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
  const cases: [Uint8Array, string][] = [
    [v2(0x21, 0x11, addresses, [0x01, 0x00]), "v2 TLV at byte 28 has 2 of its 3 type and length"],
    [v2(0x21, 0x11, addresses, [0x01, 0x00, 0x05, 0x61]), "v2 TLV 0x01 at byte 28 of 5 bytes"],
    [v2(0x21, 0x11, addresses, tlv(0x20, [1, 0, 0, 0])), "v2 SSL TLV has 4 bytes, fewer than"],
    [
      v2(0x21, 0x11, addresses, tlv(0x20, [1, 0, 0, 0, 0, 0x21, 0, 9, 0x41])),
      "v2 SSL sub-TLV 0x21 at byte 36 of 9 bytes overruns the end at byte 40",
    ],
    [v2(0x21, 0x11, addresses, tlv(0x05, new Array(129).fill(1))), "v2 unique ID TLV has 129"],
    [
      v2(0x21, 0x11, addresses, tlv(0x03, [0, 0, 0, 0]), tlv(0x03, [0, 0, 0, 0])),
      "v2 header has two CRC32C TLVs",
    ],
  ];
  for (const [input, reason] of cases) {
    const got = invalid(input);
    assert(got.startsWith(reason), got);
  }
  assertEquals(complete(v2(0x21, 0x11, addresses, tlv(0x05, new Array(128).fill(1)))).length, 159);
});

Deno.test("v2: the longest header, 16 + 65535 bytes", () => {
  const noop = tlv(PP2_TYPE_NOOP, new Array(65535 - 12 - 3).fill(0));
  const input = v2(0x21, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2], noop);
  assertEquals(input.length, PROXY_V2_MAX_LENGTH);
  assertEquals(complete(concat(input, DATA)).length, PROXY_V2_MAX_LENGTH);
});

// ---- Prefixes and early refusal ----------------------------------------------------------------

Deno.test("every proper prefix of a valid header is incomplete, the whole complete", () => {
  for (const [name, header] of VALID) {
    for (let n = 0; n < header.length; n++) {
      const result = parseProxyHeader(header.subarray(0, n));
      assertEquals(result.status, "incomplete", `${name}, ${n} of ${header.length} bytes`);
    }
    assertEquals(complete(header).length, header.length, name);
    assertEquals(complete(concat(header, DATA)).length, header.length, name);
  }
});

Deno.test("early refusal: a client that speaks something else is refused on its first byte", () => {
  const tlsClientHello = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
  assertEquals(refusedAfter(bytes("GET / HTTP/1.1\r\n")), 1);
  assertEquals(refusedAfter(bytes("hello")), 1);
  assertEquals(refusedAfter(tlsClientHello), 1);
  assertEquals(refusedAfter(bytes("SSH-2.0-OpenSSH_9.2\r\n")), 1);
  assertEquals(refusedAfter(new Uint8Array([0])), 1);
  // Bytes that start like a header are refused on the first that differs.
  assertEquals(refusedAfter(bytes("PROXX")), 5);
  assertEquals(refusedAfter(bytes("PROXYTCP4")), 6);
  assertEquals(refusedAfter(bytes("\r\n\r\nX")), 5);
  assertEquals(refusedAfter(bytes(SIG.slice(0, 11), [0x00])), 12);
  assertEquals(
    invalid(bytes("hello")),
    'not a PROXY protocol header (first bytes "hello")',
  );
  assertEquals(
    invalid(tlsClientHello),
    'not a PROXY protocol header (first bytes "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc")',
  );
  assertEquals(parseProxyHeader(new Uint8Array(0)).status, "incomplete");
});

// ---- ProxyHeaderReader --------------------------------------------------------------------------

/** Pushes `chunks` until the reader decides; the result and the bytes pushed after it. */
function readAll(reader: ProxyHeaderReader, chunks: Uint8Array[]) {
  for (let i = 0; i < chunks.length; i++) {
    const result = reader.push(chunks[i]);
    if (result.status !== "incomplete") return { result, after: chunks.slice(i + 1) };
  }
  return { result: { status: "incomplete" } as const, after: [] };
}

Deno.test("reader: split at every position, the same header and the right rest", () => {
  for (const [name, header] of VALID) {
    const input = concat(header, DATA);
    const expected = parseProxyHeader(input);
    for (let at = 0; at <= input.length; at++) {
      const reader = new ProxyHeaderReader();
      const { result, after } = readAll(reader, [input.subarray(0, at), input.subarray(at)]);
      if (result.status !== "complete" || expected.status !== "complete") {
        throw new Error(`${name} split at ${at}: ${result.status}`);
      }
      assertEquals(result.header, expected.header, `${name} split at ${at}`);
      assertEquals(result.length, header.length);
      assertEquals(concat(result.rest, ...after), DATA, `${name} split at ${at}: rest`);
      assertEquals(reader.held, 0);
    }
  }
});

Deno.test("reader: a byte at a time, and in three pieces", () => {
  for (const [name, header] of VALID) {
    const input = concat(header, DATA);
    const reader = new ProxyHeaderReader();
    for (let i = 0; i < header.length - 1; i++) {
      assertEquals(reader.push(input.subarray(i, i + 1)).status, "incomplete", name);
      assertEquals(reader.held, i + 1, `${name}: holds what it was given`);
    }
    const last = completed(reader.push(input.subarray(header.length - 1)));
    assertEquals(last.rest, DATA, name);
    for (const [a, b] of [[1, 2], [5, 17], [13, 16], [16, header.length - 1]]) {
      if (b <= a) continue;
      const r = new ProxyHeaderReader();
      const { result, after } = readAll(r, [
        input.subarray(0, a),
        input.subarray(a, b),
        input.subarray(b),
      ]);
      assertEquals(concat(completed(result).rest, ...after), DATA, `${name} ${a} ${b}`);
    }
  }
});

Deno.test("reader: a whole header in one chunk is parsed in place and rest is a view of it", () => {
  const chunk = concat(V2_TCP4, DATA);
  const reader = new ProxyHeaderReader();
  const result = completed(reader.push(chunk));
  assertStrictEquals(result.rest.buffer, chunk.buffer);
  assertEquals(result.rest.byteOffset, V2_TCP4.length);
  assertEquals(reader.held, 0);
});

Deno.test("reader: holds no more than the header needs, never more than the v2 maximum", () => {
  // A version 1 line in pieces holds at most what came before its CRLF.
  const reader = new ProxyHeaderReader();
  reader.push(bytes("PROXY TCP4 1.2.3.4 "));
  assertEquals(reader.held, 19);
  const done = completed(reader.push(bytes("5.6.7.8 1 2\r\n", "x".repeat(100_000))));
  assertEquals(done.rest.length, 100_000);
  // The longest v2 header, in 1000-byte pieces followed by a megabyte of data.
  const noop = tlv(PP2_TYPE_NOOP, new Array(65535 - 3).fill(7));
  const input = concat(v2(0x21, 0x00, noop), new Uint8Array(1 << 20));
  const big = new ProxyHeaderReader();
  let result: ProxyParseResult = { status: "incomplete" };
  let at = 0;
  for (; result.status === "incomplete"; at += 1000) {
    result = big.push(input.subarray(at, at + 1000));
    assert(big.held <= PROXY_V2_MAX_LENGTH);
    if (result.status === "incomplete") assertEquals(big.held, at + 1000);
  }
  assertEquals(completed(result).length, PROXY_V2_MAX_LENGTH);
  // A v1 line without its CRLF is refused once it cannot fit in 107 bytes, holding at most 105.
  const v1 = new ProxyHeaderReader();
  let last: ProxyParseResult = { status: "incomplete" };
  for (let i = 0; i < 200 && last.status === "incomplete"; i++) {
    last = v1.push(bytes(i < 6 ? "PROXY "[i] : "x"));
    assert(v1.held <= 105);
  }
  assertEquals(last, { status: "invalid", reason: 'v1 protocol "x" is not TCP4, TCP6 or UNKNOWN' });
  const unknown = new ProxyHeaderReader();
  unknown.push(bytes("PROXY UNKNOWN "));
  const tooLong = unknown.push(bytes("x".repeat(5000)));
  assertEquals(tooLong, { status: "invalid", reason: "v1 header longer than 107 bytes" });
});

/**
 * The furthest byte `Uint8Array.prototype.set` wrote into any array while `run` ran: how much
 * the reader copied, seen from outside (it copies with `set` only).
 */
function furthestCopy(run: () => void): number {
  const original = Uint8Array.prototype.set;
  let furthest = 0;
  Uint8Array.prototype.set = function (this: Uint8Array, source: ArrayLike<number>, offset = 0) {
    furthest = Math.max(furthest, offset + source.length);
    return original.call(this, source, offset);
  } as typeof original;
  try {
    run();
  } finally {
    Uint8Array.prototype.set = original;
  }
  return furthest;
}

Deno.test("reader: copies from a chunk only the bytes the header can still need", () => {
  // The rest of a v1 line comes with a megabyte of data: the reader copies at most 107 bytes.
  const v1 = new ProxyHeaderReader();
  v1.push(bytes("PROXY TCP4 1.2.3.4 "));
  const data = new Uint8Array(1 << 20);
  let rest: Uint8Array = new Uint8Array(0);
  const copiedV1 = furthestCopy(() => {
    rest = completed(v1.push(bytes("5.6.7.8 1 2\r\n", data))).rest;
  });
  assert(copiedV1 <= PROXY_V1_MAX_LENGTH, `copied up to byte ${copiedV1}`);
  assertEquals(rest.length, data.length);
  // A v2 header: once its length is known, exactly up to its end.
  const v2Reader = new ProxyHeaderReader();
  v2Reader.push(V2_TLVS.subarray(0, 10));
  const copiedV2 = furthestCopy(() => {
    completed(v2Reader.push(concat(V2_TLVS.subarray(10), data)));
  });
  assertEquals(copiedV2, V2_TLVS.length);
  // And a refused line: no more than 107 bytes either.
  const refused = new ProxyHeaderReader();
  refused.push(bytes("PROXY UNKNOWN"));
  const copiedRefused = furthestCopy(() => {
    assertEquals(refused.push(data).status, "invalid");
  });
  assert(copiedRefused <= PROXY_V1_MAX_LENGTH, `copied up to byte ${copiedRefused}`);
});

Deno.test("reader: refuses early too, and a push after the end is an error in the style", () => {
  const reader = new ProxyHeaderReader();
  assertEquals(reader.push(bytes("PROX")).status, "incomplete");
  assertEquals(reader.push(bytes("Z")).status, "invalid");
  assertEquals(reader.held, 0);
  const error = assertThrows(() => reader.push(bytes("Y")), Error);
  assertStdStyle(error.message);
  assert(error.message.includes('"invalid"'), error.message);
  const done = new ProxyHeaderReader();
  done.push(V1_UNKNOWN);
  assertThrows(() => done.push(DATA), Error, 'already returned "complete"');
  // An empty chunk changes nothing.
  const empty = new ProxyHeaderReader();
  assertEquals(empty.push(new Uint8Array(0)).status, "incomplete");
  empty.push(V2_TCP4.subarray(0, 3));
  assertEquals(empty.push(new Uint8Array(0)).status, "incomplete");
  assertEquals(empty.held, 3);
});

// ---- Encoder -----------------------------------------------------------------------------------

Deno.test("encode: the bytes written by hand, from the encoder", () => {
  assertEquals(
    encodeProxyHeader({
      version: 2,
      source: tcp("192.168.0.1", 56324),
      destination: tcp("192.168.0.11", 443),
    }),
    V2_TCP4,
  );
  assertEquals(
    encodeProxyHeader({
      version: 2,
      source: udp("2001:db8::1", 5353),
      destination: udp("::ffff:192.0.2.1", 53),
    }),
    V2_UDP6,
  );
  assertEquals(encodeProxyHeader({ version: 2, command: "local" }), V2_LOCAL);
  assertEquals(encodeProxyHeader({ version: 2 }), V2_UNSPEC);
  assertEquals(
    encodeProxyHeader({
      version: 1,
      source: tcp("192.168.0.1", 56324),
      destination: tcp("192.168.0.11", 443),
    }),
    V1_TCP4,
  );
  assertEquals(encodeProxyHeader({ version: 1 }), V1_UNKNOWN);
  assertEquals(encodeProxyHeader({ version: 1, command: "local" }), V1_UNKNOWN);
  assertEquals(
    encodeProxyHeader({
      version: 2,
      source: tcp("127.0.0.1", 12345),
      destination: tcp("127.0.0.2", 80),
      crc32c: true,
    }),
    V2_CRC_GOOD,
  );
  assertEquals(
    encodeProxyHeader({ version: 2, command: "local", crc32c: true }).subarray(0, 19),
    HAPROXY_V2_LOCAL_CHECK.subarray(0, 19),
  );
});

Deno.test("encode: round trips through the parser", () => {
  const cases: [ProxyHeaderOptions, Partial<ProxyHeader>][] = [
    [{ version: 1, source: tcp("10.0.0.1", 1), destination: tcp("10.0.0.2", 65535) }, {
      protocol: "tcp4",
    }],
    [{ version: 1, source: tcp("2001:DB8::1", 0), destination: tcp("[::1]", 2) }, {
      protocol: "tcp6",
      source: tcp("2001:db8::1", 0),
      destination: tcp("::1", 2),
    }],
    [{ version: 1 }, { protocol: "unknown", source: null }],
    [{ version: 2, source: tcp("10.0.0.1", 1), destination: tcp("10.0.0.2", 2) }, {
      protocol: "tcp4",
    }],
    [{ version: 2, source: udp("10.0.0.1", 1), destination: udp("10.0.0.2", 2) }, {
      protocol: "udp4",
    }],
    [{ version: 2, source: tcp("fe80::1%eth0", 1), destination: tcp("::", 2) }, {
      protocol: "tcp6",
      source: tcp("fe80::1", 1),
    }],
    [{ version: 2, source: udp("::1", 1), destination: udp("::2", 2) }, { protocol: "udp6" }],
    [{ version: 2, command: "local" }, { command: "local", protocol: "unknown" }],
    [{ version: 2 }, { command: "proxy", protocol: "unknown" }],
    // An IPv4-mapped address beside an IPv4 one is written as IPv4, in either position.
    [{ version: 1, source: tcp("::ffff:192.0.2.1", 1), destination: tcp("192.0.2.2", 2) }, {
      protocol: "tcp4",
      source: tcp("192.0.2.1", 1),
    }],
    [{ version: 2, source: udp("192.0.2.1", 1), destination: udp("::ffff:192.0.2.2", 2) }, {
      protocol: "udp4",
      destination: udp("192.0.2.2", 2),
    }],
    // Two mapped addresses stay IPv6.
    [{ version: 2, source: tcp("::ffff:192.0.2.1", 1), destination: tcp("::ffff:1.2.3.4", 2) }, {
      protocol: "tcp6",
      source: tcp("::ffff:192.0.2.1", 1),
    }],
    [{
      version: 2,
      source: tcp("10.0.0.1", 1),
      destination: tcp("10.0.0.2", 2),
      tlvs: [
        { type: PP2_TYPE_ALPN, value: bytes("http/1.1") },
        { type: PP2_TYPE_AUTHORITY, value: bytes("example.com") },
        { type: 0xf7, value: new Uint8Array(0) },
      ],
      crc32c: true,
    }, { alpn: "http/1.1", authority: "example.com" }],
  ];
  for (const [options, expected] of cases) {
    const encoded = encodeProxyHeader(options);
    const { header, length } = complete(concat(encoded, DATA));
    assertEquals(length, encoded.length);
    const wanted: Partial<ProxyHeader> = {
      version: options.version,
      command: options.command ?? "proxy",
      source: options.source ? { ...options.source } : null,
      destination: options.destination ? { ...options.destination } : null,
      ...expected,
    };
    for (const [key, value] of Object.entries(wanted)) {
      assertEquals(header[key as keyof ProxyHeader], value, `${JSON.stringify(options)}: ${key}`);
    }
    if (options.tlvs) {
      assertEquals(header.tlvs.slice(0, options.tlvs.length), options.tlvs);
      assertEquals(header.tlvs.at(-1)?.type, PP2_TYPE_CRC32C);
    }
  }
});

Deno.test("encode: bad options throw in the project's style, naming the value", () => {
  const a = tcp("10.0.0.1", 1);
  const b = tcp("10.0.0.2", 2);
  const cases: [() => unknown, ErrorConstructor | RangeErrorConstructor, string][] = [
    [() => encodeProxyHeader({ version: 3 as 1 }), RangeError, "version 3"],
    [() => encodeProxyHeader({ version: 2, command: "check" as "local" }), TypeError, '"check"'],
    [() => encodeProxyHeader({ version: 2, source: a }), TypeError, "a source alone"],
    [() => encodeProxyHeader({ version: 2, destination: b }), TypeError, "a destination alone"],
    [
      () => encodeProxyHeader({ version: 2, command: "local", source: a, destination: b }),
      TypeError,
      "LOCAL",
    ],
    [
      () => encodeProxyHeader({ version: 1, tlvs: [{ type: 1, value: bytes("h2") }] }),
      TypeError,
      "version 1",
    ],
    [() => encodeProxyHeader({ version: 1, crc32c: true }), TypeError, "version 1"],
    [
      () =>
        encodeProxyHeader({ version: 1, source: udp("10.0.0.1", 1), destination: udp("::", 2) }),
      RangeError,
      "IPv4",
    ],
    [
      () =>
        encodeProxyHeader({
          version: 1,
          source: udp("1.1.1.1", 1),
          destination: udp("2.2.2.2", 2),
        }),
      RangeError,
      '"udp"',
    ],
    [
      () => encodeProxyHeader({ version: 2, source: tcp("example.com", 1), destination: b }),
      RangeError,
      '"example.com"',
    ],
    [
      () => encodeProxyHeader({ version: 2, source: a, destination: tcp("010.0.0.2", 1) }),
      RangeError,
      '"010.0.0.2"',
    ],
    [
      () => encodeProxyHeader({ version: 2, source: tcp("10.0.0.1", 70000), destination: b }),
      RangeError,
      "70000",
    ],
    [
      () => encodeProxyHeader({ version: 2, source: a, destination: tcp("10.0.0.2", 1.5) }),
      RangeError,
      "1.5",
    ],
    [
      () => encodeProxyHeader({ version: 2, source: a, destination: udp("10.0.0.2", 2) }),
      TypeError,
      '"udp"',
    ],
    [
      () =>
        encodeProxyHeader({
          version: 2,
          source: { transport: "unix", path: "/x" } as unknown as Deno.NetAddr,
          destination: b,
        }),
      TypeError,
      '"unix"',
    ],
    [
      () => encodeProxyHeader({ version: 2, source: tcp("::1", 1), destination: b }),
      RangeError,
      '"10.0.0.2" and IPv6 "::1"',
    ],
    [
      () => encodeProxyHeader({ version: 2, tlvs: [{ type: 256, value: bytes("x") }] }),
      RangeError,
      "256",
    ],
    [
      () =>
        encodeProxyHeader({
          version: 2,
          tlvs: [{ type: 1, value: "h2" as unknown as Uint8Array }],
        }),
      TypeError,
      "h2",
    ],
    [
      () =>
        encodeProxyHeader({
          version: 2,
          source: a,
          destination: b,
          tlvs: [{ type: PP2_TYPE_NOOP, value: new Uint8Array(65535 - 12 - 2) }],
        }),
      RangeError,
      "65536 bytes",
    ],
  ];
  for (const [make, type, mentions] of cases) {
    const error = assertThrows(make, type as ErrorConstructor);
    assertStdStyle(error.message);
    assert(error.message.includes(mentions), `${error.message} does not mention ${mentions}`);
  }
  // The largest that fits.
  const fits = encodeProxyHeader({
    version: 2,
    source: a,
    destination: b,
    tlvs: [{ type: PP2_TYPE_NOOP, value: new Uint8Array(65535 - 12 - 3) }],
  });
  assertEquals(fits.length, PROXY_V2_MAX_LENGTH);
  assertEquals(fits.subarray(0, 12), PROXY_V2_SIGNATURE);
});

// ---- Trusted proxies ---------------------------------------------------------------------------

Deno.test("trusted: IPv4 and IPv6 networks, bare addresses, mapped IPv4 peers", () => {
  const list = parseCidrList("10.0.0.0/8,127.0.0.1, ::1/128 ,fd00::/8,192.168.1.128/25");
  assertEquals(list.entries, [
    "10.0.0.0/8",
    "127.0.0.1/32",
    "::1/128",
    "fd00::/8",
    "192.168.1.128/25",
  ]);
  const yes = [
    "10.0.0.0",
    "10.255.255.255",
    "::ffff:10.1.2.3",
    "127.0.0.1",
    "::1",
    "[::1]",
    "fd12:3456::1",
    "FD00::1",
    "192.168.1.200",
    "::ffff:192.168.1.128",
  ];
  const no = [
    "11.0.0.0",
    "9.255.255.255",
    "127.0.0.2",
    "::2",
    "fe00::1",
    "192.168.1.127",
    "::10.1.2.3", // IPv4-compatible, not mapped
    "localhost",
    "",
    "10.0.0.1:80",
  ];
  for (const host of yes) assert(list.includes(host), host);
  for (const host of no) assert(!list.includes(host), host);
  assert(!list.includes(42 as unknown as string));
});

Deno.test("trusted: /0, an array, an empty list, mapped entries", () => {
  const allV4 = parseCidrList("0.0.0.0/0");
  assert(allV4.includes("203.0.113.1") && allV4.includes("::ffff:203.0.113.1"));
  assert(!allV4.includes("2001:db8::1"));
  const all = parseCidrList(["::/0"]);
  assert(all.includes("2001:db8::1") && all.includes("203.0.113.1"));
  const none = parseCidrList("");
  assertEquals(none.entries, []);
  assert(!none.includes("127.0.0.1"));
  assert(!parseCidrList([]).includes("::1"));
  const mapped = parseCidrList(["::ffff:10.0.0.0/104"]);
  assert(mapped.includes("10.9.9.9") && !mapped.includes("11.0.0.0"));
  assert(parseCidrList("10.0.0.0/31").includes("10.0.0.1"));
  assert(!parseCidrList("10.0.0.0/32").includes("10.0.0.1"));
});

Deno.test("trusted: bad entries throw a RangeError naming the entry and what to write", () => {
  const cases: [string | string[], string][] = [
    ["10.0.0.0/33", '"10.0.0.0/32"'],
    ["fd00::/129", '"fd00::/128"'],
    ["10.0.0.0/08", '"08"'],
    ["10.0.0.0/", '""'],
    ["10.0.0.1/8", 'write the network as "10.0.0.0/8"'],
    ["fd00::1/8", '"fd00::/8"'],
    ["example.com", '"example.com" is not an IPv4 or IPv6 address'],
    ["10.0.0.0/8,,::1", 'entry ""'],
    [["10.0.0.0/8", "256.0.0.0/8"], '"256.0.0.0/8"'],
    ["010.0.0.0/8", '"010.0.0.0"'],
    ["10.0.0.0/8 ::1", '"10.0.0.0/8 ::1"'],
  ];
  for (const [list, mentions] of cases) {
    const error = assertThrows(() => parseCidrList(list), RangeError);
    assertStdStyle(error.message);
    assert(error.message.includes(mentions), `${error.message} does not mention ${mentions}`);
  }
  const error = assertThrows(() => parseCidrList([1] as unknown as string[]), TypeError);
  assertStdStyle(error.message);
});
