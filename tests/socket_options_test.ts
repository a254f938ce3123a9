import { assertEquals, assertThrows } from "@std/assert";
import { platformConstants } from "../src/libc/_constants.ts";
import { notPassedOn, settingsOf } from "../src/sockopt/_setup.ts";
import { validateSocketOptions } from "../src/sockopt/socket_options.ts";

Deno.test("socket options: good values pass", () => {
  validateSocketOptions({});
  validateSocketOptions({
    reuseAddress: true,
    reusePort: false,
    backlog: 100,
    receiveBufferSize: 65536,
    sendBufferSize: 65536,
    noDelay: true,
    keepAlive: { idle: 1800, count: 5, interval: 15 },
    quickAck: true,
  });
  validateSocketOptions({ keepAlive: { idle: 32767, interval: 1, count: 127 } });
  validateSocketOptions({ keepAlive: true });
});

Deno.test("socket options: each bad value names the option, the value and the range", () => {
  const cases: [object, new (...args: never[]) => Error, string][] = [
    [
      { receiveBufferSize: -1 },
      RangeError,
      "Invalid receiveBufferSize: -1. Use a whole number from 1 to 1073741824.",
    ],
    [{ sendBufferSize: 0 }, RangeError, "Invalid sendBufferSize: 0."],
    [{ sendBufferSize: 1.5 }, RangeError, "Invalid sendBufferSize: 1.5."],
    [{ backlog: 0 }, RangeError, "Invalid backlog: 0. Use a whole number from 1 to 65535."],
    [
      { keepAlive: { idle: 0 } },
      RangeError,
      "Invalid keepAlive.idle: 0. Use a whole number from 1 to 32767.",
    ],
    [{ keepAlive: { interval: 32768 } }, RangeError, "Invalid keepAlive.interval: 32768."],
    [
      { keepAlive: { count: 128 } },
      RangeError,
      "Invalid keepAlive.count: 128. Use a whole number from 1 to 127.",
    ],
    [
      { keepAlive: "yes" },
      TypeError,
      'Invalid keepAlive: "yes". Use true, false or { idle, interval, count }',
    ],
    [{ noDelay: 1 }, TypeError, "Invalid noDelay: 1. Use true or false."],
    [{ quickAck: "on" }, TypeError, 'Invalid quickAck: "on".'],
  ];
  for (const [options, type, message] of cases) {
    assertThrows(() => validateSocketOptions(options as never), type, message);
  }
});

Deno.test("socket options: what a listener does not pass on is set per connection (macOS: idle)", () => {
  const settings = settingsOf({
    receiveBufferSize: 1000,
    keepAlive: { idle: 60, interval: 5, count: 3 },
  }, true);
  assertEquals(notPassedOn(settings, platformConstants("darwin")!), [
    ["keepAliveIdle", "keepAlive.idle", 60],
  ]);
  // Linux passes all of them on (tests/sockopt_ffi_test.ts checks it on real sockets).
  assertEquals(notPassedOn(settings, platformConstants("linux")!), []);
});
