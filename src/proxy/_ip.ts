/**
 * IP addresses in text, read strictly as the PROXY protocol writes them
 * (decimal IPv4 octets without leading zeros; IPv6 in hex groups with at most
 * one `::` and an optional dotted IPv4 tail), and the prefix checks that let
 * a version 1 line be refused before it is complete. No names, no zones.
 *
 * @module
 */

/** The four bytes of a dotted IPv4 address (no leading zeros), or `null`. */
export function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every(isOctet)) return null;
  return new Uint8Array(parts.map(Number));
}

/** `0` to `255` in decimal without a leading zero. */
function isOctet(part: string): boolean {
  return /^(0|[1-9]\d{0,2})$/.test(part) && Number(part) <= 255;
}

/** The sixteen bytes of an IPv6 address (hex groups of 1 to 4 digits, either case), or `null`. */
export function parseIpv6(text: string): Uint8Array | null {
  if (!text.includes(":") || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string, last: boolean): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (v4 === null) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** Whether `text` can still grow into an address `parseIpv4` takes. */
export function isIpv4Prefix(text: string): boolean {
  const parts = text.split(".");
  if (parts.length > 4) return false;
  const last = parts.pop()!;
  if (!parts.every(isOctet)) return false;
  return last === "" || (/^\d+$/.test(last) && (last === "0" || isOctet(last)));
}

/**
 * Whether `text` can still grow into an address `parseIpv6` takes (a loose
 * check: what it lets through, the whole address's parse refuses).
 */
export function isIpv6Prefix(text: string): boolean {
  if (text.length > 45 || !/^[0-9a-fA-F:.]*$/.test(text) || text.includes(":::")) return false;
  if (text.split("::").length > 2) return false;
  const groups = text.split(":");
  if (groups.length > 9) return false;
  const last = groups.pop()!;
  if (!groups.every((group) => group.length <= 4 && !group.includes("."))) return false;
  if (last.includes(".")) return groups.length >= 2 && isIpv4Prefix(last);
  return last.length <= 4;
}

/** A port in decimal, `0` to `65535`, without a leading zero; `null` otherwise. */
export function parsePort(text: string): number | null {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

/** Whether `text` can still grow into a port `parsePort` takes. */
export function isPortPrefix(text: string): boolean {
  return text === "" || parsePort(text) !== null;
}
