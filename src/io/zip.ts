// The central directory of a ZIP archive and the byte ranges of its stored entries, read through
// positioned reads (a file handle, or bytes in memory). Only what PyTorch checkpoints need:
// entries stored without compression (torch.save writes every record stored, 64-byte aligned),
// ZIP64 sizes and offsets for archives over 4 GiB. Compressed entries are listed but refused when
// read, with the fix.

import { IbgpuError } from '../errors.js';

/** Reads `length` bytes at `offset` (fewer only at the end of the source). */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

export interface ZipEntry {
  name: string;
  /** 0 = stored; anything else is compressed. */
  method: number;
  size: number;
  compressedSize: number;
  /** Offset of the entry's local header. */
  localOffset: number;
}

/** The signatures (first four bytes, little-endian) of the records read here. */
const SIGNATURE = { eocd: 0x06054b50, zip64Locator: 0x07064b50, zip64Eocd: 0x06064b50, central: 0x02014b50, local: 0x04034b50 } as const;
/** A 32-bit size or offset field holding this value: the value itself is in the ZIP64 fields. */
const U32_MAX = 0xffffffff;

function bad(source: string, what: string): IbgpuError {
  return new IbgpuError('BAD_FILE', `${source}: ${what}`, 'the file is not a complete ZIP archive (a truncated or damaged checkpoint?); save it again');
}

function u64(v: DataView, at: number): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('ZIP64 value beyond 2^53');
  return Number(x);
}

/** Lists the entries of the archive of `size` bytes. */
export async function readZipDirectory(readAt: ReadAt, size: number, source: string): Promise<Map<string, ZipEntry>> {
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes, at the end.
  const tailLen = Math.min(size, 22 + 65535);
  const tail = await readAt(size - tailLen, tailLen);
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIGNATURE.eocd) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad(source, 'no end-of-central-directory record');
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== SIGNATURE.zip64Locator) throw bad(source, 'ZIP64 sizes without a ZIP64 locator');
    const recOffset = u64(tv, loc + 8);
    const rec = await readAt(recOffset, 56);
    const rv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    if (rec.length < 56 || rv.getUint32(0, true) !== SIGNATURE.zip64Eocd) throw bad(source, 'a damaged ZIP64 end record');
    count = u64(rv, 32);
    cdSize = u64(rv, 40);
    cdOffset = u64(rv, 48);
  }
  if (cdOffset + cdSize > size) throw bad(source, `the central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the ${size}-byte file`);
  const cd = await readAt(cdOffset, cdSize);
  const v = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder();
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cd.length || v.getUint32(p, true) !== SIGNATURE.central) throw bad(source, `central directory entry ${k} is damaged`);
    const method = v.getUint16(p + 10, true);
    let compressedSize = v.getUint32(p + 20, true);
    let usize = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localOffset = v.getUint32(p + 42, true);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field (id 1): the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true);
      const len = v.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (usize === U32_MAX) {
          usize = u64(v, q);
          q += 8;
        }
        if (compressedSize === U32_MAX) {
          compressedSize = u64(v, q);
          q += 8;
        }
        if (localOffset === U32_MAX) localOffset = u64(v, q);
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, size: usize, compressedSize, localOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

/** The bytes of a stored entry. */
export async function readZipEntry(readAt: ReadAt, entry: ZipEntry, source: string): Promise<Uint8Array> {
  if (entry.method !== 0) {
    throw new IbgpuError(
      'BAD_FILE',
      `${source}: ${entry.name} is compressed (method ${entry.method}); only stored entries are read`,
      'save the checkpoint with torch.save (which stores its records uncompressed), not by re-zipping it',
    );
  }
  const head = await readAt(entry.localOffset, 30);
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 30 || hv.getUint32(0, true) !== SIGNATURE.local) throw bad(source, `the local header of ${entry.name} is damaged`);
  const start = entry.localOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
  const bytes = await readAt(start, entry.size);
  if (bytes.length !== entry.size) throw bad(source, `${entry.name} ends after ${bytes.length} of its ${entry.size} bytes`);
  return bytes;
}
