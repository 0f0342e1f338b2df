/**
 * Builds binary utmp files for the tests (no capture exists: the fixture machine had no login sessions and no
 * utmp file). The layout is glibc's `struct utmp` on Linux, 384 bytes: ut_type int16 @0, ut_pid int32 @4,
 * ut_line[32] @8, ut_id[4] @40, ut_user[32] @44, ut_host[256] @76, ut_exit @332, ut_session @336,
 * ut_tv.tv_sec int32 @340, ut_tv.tv_usec @344, ut_addr_v6[4] @348, unused[20] @364.
 */
export interface UtmpRecordSpec {
  type: number;
  pid?: number;
  line?: string;
  id?: string;
  user?: string;
  host?: string;
  timeSec?: number;
}

/** ut_type values from <utmp.h>. */
export const UT = { EMPTY: 0, RUN_LVL: 1, BOOT_TIME: 2, INIT_PROCESS: 5, LOGIN_PROCESS: 6, USER_PROCESS: 7, DEAD_PROCESS: 8 };

/** Encodes records in the given byte order. */
export function makeUtmp(records: readonly UtmpRecordSpec[], littleEndian = true): Buffer {
  return Buffer.concat(
    records.map((r) => {
      const b = Buffer.alloc(384);
      if (littleEndian) {
        b.writeInt16LE(r.type, 0);
        b.writeInt32LE(r.pid ?? 0, 4);
        b.writeInt32LE(r.timeSec ?? 0, 340);
      } else {
        b.writeInt16BE(r.type, 0);
        b.writeInt32BE(r.pid ?? 0, 4);
        b.writeInt32BE(r.timeSec ?? 0, 340);
      }
      b.write(r.line ?? "", 8, 32);
      b.write(r.id ?? "", 40, 4);
      b.write(r.user ?? "", 44, 32);
      b.write(r.host ?? "", 76, 256);
      return b;
    }),
  );
}

/** A typical table: boot record, run level, a getty waiting for login, two sessions of alice, one of bob, a closed one. */
export const TYPICAL_SESSIONS: readonly UtmpRecordSpec[] = [
  { type: UT.BOOT_TIME, line: "~", user: "reboot", timeSec: 1795769124 },
  { type: UT.RUN_LVL, line: "~", user: "runlevel", timeSec: 1795769130 },
  { type: UT.LOGIN_PROCESS, pid: 611, line: "tty1", id: "tty1", user: "LOGIN" },
  { type: UT.USER_PROCESS, pid: 1200, line: "pts/0", id: "ts/0", user: "alice", host: "192.0.2.10", timeSec: 1795769300 },
  { type: UT.USER_PROCESS, pid: 1300, line: "pts/1", id: "ts/1", user: "alice", host: "192.0.2.10", timeSec: 1795769400 },
  { type: UT.USER_PROCESS, pid: 1400, line: "tty2", id: "tty2", user: "bob", timeSec: 1795769500 },
  { type: UT.DEAD_PROCESS, pid: 1100, line: "pts/2", id: "ts/2", timeSec: 1795769200 },
  { type: UT.USER_PROCESS, pid: 1500, line: "pts/3", id: "ts/3", user: "", timeSec: 1795769600 },
];
