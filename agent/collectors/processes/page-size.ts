import fs from "node:fs";
import os from "node:os";

/** `AT_PAGESZ` in the ELF auxiliary vector. */
const AT_PAGESZ = 6;
/** Used when the auxiliary vector cannot be read: the page size of x86 and of most arm64 kernels. */
export const FALLBACK_PAGE_SIZE = 4096;

/** Architectures whose `unsigned long` (the auxv word) is 32 bits. */
const WORD32 = new Set(["arm", "ia32", "mips", "mipsel", "ppc"]);

/**
 * Finds `AT_PAGESZ` in an auxiliary vector (`/proc/self/auxv`: pairs of native-endian words, type then value,
 * ended by type 0). Undefined when absent or implausible.
 */
export function pageSizeFromAuxv(buf: Buffer, wordBytes: 4 | 8, littleEndian: boolean): number | undefined {
  const step = wordBytes * 2;
  const word = (off: number): number =>
    wordBytes === 8
      ? Number(littleEndian ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off))
      : littleEndian
        ? buf.readUInt32LE(off)
        : buf.readUInt32BE(off);
  for (let off = 0; off + step <= buf.length; off += step) {
    const type = word(off);
    if (type === 0) break;
    if (type === AT_PAGESZ) {
      const v = word(off + wordBytes);
      // A power of two between 4 KiB and 1 MiB (x86 4K; arm64 4K/16K/64K; ppc64 64K).
      return v >= 4096 && v <= 1 << 20 && (v & (v - 1)) === 0 ? v : undefined;
    }
  }
  return undefined;
}

/**
 * The kernel's page size, to turn `rss` pages into bytes. Node does not expose `sysconf(_SC_PAGESIZE)` and a
 * `getconf` child would cost more than the whole collector run, so it is read from the agent's own ELF auxiliary
 * vector — always the real `/proc/self/auxv`, whatever the proc root, since the page size is the running
 * kernel's. Falls back to 4096.
 */
export function readPageSize(auxvPath = "/proc/self/auxv"): number {
  try {
    const wordBytes = WORD32.has(os.arch()) ? 4 : 8;
    return pageSizeFromAuxv(fs.readFileSync(auxvPath), wordBytes, os.endianness() === "LE") ?? FALLBACK_PAGE_SIZE;
  } catch {
    return FALLBACK_PAGE_SIZE;
  }
}
