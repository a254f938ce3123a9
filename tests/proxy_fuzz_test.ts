/**
 * Seeded, deterministic fuzzing of the PROXY protocol parser and reader:
 * random bytes shaped to get past the first byte, mutations and truncations
 * of valid headers. The parser must never throw, answer in one of its three
 * shapes, never refuse a prefix of what it would accept, and agree with the
 * reader fed the same bytes in random pieces; the reader must never hold
 * more than `PROXY_V2_MAX_LENGTH` bytes.
 */

import { assert, assertEquals } from "@std/assert";
import {
  encodeProxyHeader,
  parseProxyHeader,
  PROXY_V2_MAX_LENGTH,
  ProxyHeaderReader,
  type ProxyParseResult,
  type ProxyReadResult,
} from "../src/proxy/mod.ts";
import { prng } from "./_helpers.ts";
import { bytes, SIG, tlv, u16, VALID } from "./_proxy_vectors.ts";

/** Fails unless `result` has exactly the keys of one of the three shapes. */
function assertShape(result: ProxyParseResult, input: Uint8Array): void {
  const keys = Object.keys(result).sort().join(",");
  if (result.status === "incomplete") assertEquals(keys, "status");
  else if (result.status === "invalid") {
    assertEquals(keys, "reason,status");
    assert(typeof result.reason === "string" && result.reason.length > 0);
  } else {
    assertEquals(result.status, "complete");
    assertEquals(keys, "header,length,status");
    assert(result.length >= 15 && result.length <= input.length, `length ${result.length}`);
    assert(result.length <= PROXY_V2_MAX_LENGTH);
    const { header } = result;
    assert(header.version === 1 || header.version === 2);
    assert(header.command === "proxy" || header.command === "local");
    assert((header.source === null) === (header.destination === null));
    if (header.version === 1) assert(result.length <= 107);
  }
}

/** The parser on `input`, checked: no throw, a known shape, consistent with a prefix. */
function check(input: Uint8Array, random: () => number): ProxyParseResult {
  let result: ProxyParseResult;
  try {
    result = parseProxyHeader(input);
  } catch (error) {
    throw new Error(`parseProxyHeader threw on ${hexOf(input)}: ${error}`);
  }
  assertShape(result, input);
  // A prefix is never refused when the whole is accepted, nor accepted differently.
  const cut = Math.floor(random() * (input.length + 1));
  const prefix = parseProxyHeader(input.subarray(0, cut));
  assertShape(prefix, input.subarray(0, cut));
  if (prefix.status === "invalid") {
    assertEquals(result.status, "invalid", `prefix ${cut} invalid, whole not: ${hexOf(input)}`);
  }
  if (prefix.status === "complete") assertEquals(result, prefix);
  if (result.status === "complete") {
    assertEquals(parseProxyHeader(input.subarray(0, result.length)), result);
    if (cut < result.length) assertEquals(prefix.status, "incomplete");
  }
  return result;
}

/** The reader on `input` in random pieces: it agrees with the parser and holds little. */
function checkReader(input: Uint8Array, expected: ProxyParseResult, random: () => number): void {
  const reader = new ProxyHeaderReader();
  let result: ProxyReadResult = { status: "incomplete" };
  let at = 0;
  let pushed = 0;
  while (at < input.length) {
    const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * Math.min(input.length, 300));
    const chunk = input.subarray(at, at + size);
    at += chunk.length;
    pushed += chunk.length;
    result = reader.push(chunk);
    assert(reader.held <= PROXY_V2_MAX_LENGTH, `held ${reader.held}`);
    assert(reader.held <= pushed);
    if (result.status !== "incomplete") {
      assertEquals(reader.held, 0);
      break;
    }
  }
  assertEquals(result.status, expected.status, hexOf(input));
  if (result.status === "complete" && expected.status === "complete") {
    assertEquals(result.header, expected.header);
    assertEquals(result.length, expected.length);
    assertEquals(bytes(result.rest, input.subarray(at)), input.subarray(expected.length));
  }
}

function hexOf(input: Uint8Array): string {
  const shown = Array.from(input.subarray(0, 64), (b) => b.toString(16).padStart(2, "0"));
  return shown.join("") + (input.length > 64 ? `... (${input.length} bytes)` : "");
}

/** Random bytes that start like a header often enough to reach the parser's depths. */
function randomInput(random: () => number): Uint8Array {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const length = Math.floor(random() * (random() < 0.1 ? 400 : 60));
  const tail = Array.from({ length }, () => Math.floor(random() * 256));
  const v1Chars = "TCP46UNKOW0123456789abcdefABCDEF:. \r\n";
  const v1Tail = Array.from({ length }, () => v1Chars.charCodeAt(Math.floor(random() * 36)));
  switch (pick([0, 1, 2, 3, 4, 5])) {
    case 0:
      return new Uint8Array(tail);
    case 1:
      return bytes("PROXY ", v1Tail);
    case 2:
      return bytes(pick(["PROXY TCP4 ", "PROXY TCP6 ", "PROXY UNKNOWN"]), v1Tail);
    case 3:
      return bytes(SIG, tail);
    case 4: {
      const verCmd = pick([0x20, 0x21, 0x21, 0x22, 0x11]);
      const fam = pick([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x10, 0x13, 0x41]);
      return bytes(SIG, [verCmd, fam], u16(tail.length), tail);
    }
    default: {
      // Random TLVs after a valid address block, with a length that may not fit them.
      const tlvs: number[] = [];
      while (random() < 0.7) {
        const type = pick([0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30, 0xe0, 0xea, 0xee, 0xff]);
        const size = Math.floor(random() * (type === 0x03 ? 6 : 20));
        tlvs.push(...tlv(type, Array.from({ length: size }, () => Math.floor(random() * 256))));
      }
      const body = [10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 1, 187, ...tlvs];
      const length = random() < 0.8 ? body.length : Math.floor(random() * (body.length + 8));
      return bytes(SIG, [0x21, 0x11], u16(length), body);
    }
  }
}

/** `header` changed at random: bytes flipped, set, inserted or removed, cut, data appended. */
function mutate(header: Uint8Array, random: () => number): Uint8Array {
  const out = Array.from(header);
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * (out.length + 1));
    const r = random();
    if (r < 0.3 && out.length > 0) out[at % out.length] ^= 1 << Math.floor(random() * 8);
    else if (r < 0.5 && out.length > 0) out[at % out.length] = Math.floor(random() * 256);
    else if (r < 0.65) out.splice(at, 0, Math.floor(random() * 256));
    else if (r < 0.8) out.splice(at, 1);
    else if (r < 0.9) out.length = at;
    else out.push(...Array.from({ length: 10 }, () => Math.floor(random() * 256)));
  }
  return new Uint8Array(out);
}

/** Valid headers to mutate: the hand-written ones and some from the encoder. */
function seeds(): Uint8Array[] {
  const tcp = (hostname: string, port: number): Deno.NetAddr => ({
    transport: "tcp",
    hostname,
    port,
  });
  return [
    ...VALID.map(([, header]) => header),
    encodeProxyHeader({ version: 1, source: tcp("::1", 1), destination: tcp("::2", 65535) }),
    encodeProxyHeader({ version: 2, source: tcp("::1", 1), destination: tcp("::2", 2) }),
    encodeProxyHeader({
      version: 2,
      source: tcp("10.0.0.1", 1),
      destination: tcp("10.0.0.2", 2),
      tlvs: [{ type: 0x20, value: bytes([1, 0, 0, 0, 0], tlv(0x21, "TLSv1.2")) }],
      crc32c: true,
    }),
  ];
}

const ROUNDS = 40_000;

Deno.test("fuzz: random bytes never make the parser throw or the reader overreach", () => {
  const random = prng(0x5eed);
  const started = performance.now();
  const seen = { incomplete: 0, invalid: 0, complete: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const input = randomInput(random);
    const result = check(input, random);
    seen[result.status]++;
    checkReader(input, result, random);
  }
  // Each outcome is reached, so the fuzzing goes past the first byte.
  for (const [status, count] of Object.entries(seen)) {
    assert(count > ROUNDS / 100, `${status}: ${count} of ${ROUNDS}`);
  }
  assert(performance.now() - started < 10_000, "fuzzing should take a few seconds at most");
});

Deno.test("fuzz: mutations and truncations of valid headers", () => {
  const random = prng(0xc0ffee);
  const valid = seeds();
  const seen = { incomplete: 0, invalid: 0, complete: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const input = mutate(valid[i % valid.length], random);
    const result = check(input, random);
    seen[result.status]++;
    checkReader(input, result, random);
  }
  for (const [status, count] of Object.entries(seen)) {
    assert(count > ROUNDS / 100, `${status}: ${count} of ${ROUNDS}`);
  }
});

Deno.test("fuzz: large v2 headers of random content, in random pieces", () => {
  const random = prng(42);
  for (let i = 0; i < 40; i++) {
    const length = 65535 - Math.floor(random() * 1000);
    const body = new Uint8Array(length);
    for (let k = 0; k < length; k++) body[k] = Math.floor(random() * 256);
    const input = bytes(SIG, [0x21, random() < 0.5 ? 0x00 : 0x11], u16(length), body, [1, 2, 3]);
    const result = check(input, random);
    checkReader(input, result, random);
  }
});
