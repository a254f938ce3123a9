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
      "Cannot use receiveBufferSize -1: it must be a whole number from 1 to 1073741824",
    ],
    [{ sendBufferSize: 0 }, RangeError, "Cannot use sendBufferSize 0:"],
    [{ sendBufferSize: 1.5 }, RangeError, "Cannot use sendBufferSize 1.5:"],
    [{ backlog: 0 }, RangeError, "Cannot use backlog 0: it must be a whole number from 1 to 65535"],
    [
      { keepAlive: { idle: 0 } },
      RangeError,
      "Cannot use keepAlive.idle 0: it must be a whole number from 1 to 32767",
    ],
    [{ keepAlive: { interval: 32768 } }, RangeError, "Cannot use keepAlive.interval 32768:"],
    [
      { keepAlive: { count: 128 } },
      RangeError,
      "Cannot use keepAlive.count 128: it must be a whole number from 1 to 127",
    ],
    [
      { keepAlive: "yes" },
      TypeError,
      'Cannot use keepAlive "yes": it must be true, false or { idle, interval, count }',
    ],
    [{ noDelay: 1 }, TypeError, "Cannot use noDelay 1: it must be true or false"],
    [{ quickAck: "on" }, TypeError, 'Cannot use quickAck "on":'],
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
