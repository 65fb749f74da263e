// exif.js: the three things the browser takes from a photo's EXIF before anything else (issue
// 21, item 2), by the same rules as media/exif.c: the orientation (1-8), the capture time
// (DateTimeOriginal, else DateTime, "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS", zeros or
// nonsense count as absent) and GPS (degrees, minutes, seconds as three RATIONALs with an N/S
// or E/W reference, at most 90 and 180). Nothing else is read, and the file itself never leaves
// the page: the image is re-encoded by a canvas (js/photo_send.js), which writes no EXIF.
// Every read is bounds-checked: a damaged or hostile file gives "absent", never an exception.

const TYPE_SIZE = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8 };

// The TIFF bytes of the first Exif APP1 segment of a JPEG (Uint8Array), or null.
export function exifTiff(jpeg) {
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return null;
  for (let p = 2; p + 4 <= jpeg.length;) {
    if (jpeg[p] !== 0xff) return null;
    const m = jpeg[p + 1];
    if (m === 0xff) { p++; continue; }
    if (m === 0xda || m === 0xd9) return null; // the image data: no EXIF before it
    const len = (jpeg[p + 2] << 8) | jpeg[p + 3];
    if (len < 2 || p + 2 + len > jpeg.length) return null;
    if (m === 0xe1 && len >= 8 && String.fromCharCode(...jpeg.subarray(p + 4, p + 10)) === 'Exif\0\0')
      return jpeg.subarray(p + 10, p + 2 + len);
    p += 2 + len;
  }
  return null;
}

// {orientation, capturedAt: string|null, gps: {lat, lon}|null} of a JPEG's bytes.
export function exifRead(jpeg) {
  const out = { orientation: 1, capturedAt: null, gps: null };
  const t = exifTiff(jpeg);
  if (!t || t.length < 8) return out;
  const dv = new DataView(t.buffer, t.byteOffset, t.length);
  let be;
  if (t[0] === 0x49 && t[1] === 0x49 && t[2] === 42 && t[3] === 0) be = false;
  else if (t[0] === 0x4d && t[1] === 0x4d && t[2] === 0 && t[3] === 42) be = true;
  else return out;
  const u16 = (o) => dv.getUint16(o, !be);
  const u32 = (o) => dv.getUint32(o, !be);
  // The entry of tag in the IFD at off: {type, count, at (offset of its value)}, or null.
  const find = (off, tag) => {
    if (!off || off + 2 > t.length) return null;
    const n = u16(off);
    if (off + 2 + n * 12 > t.length) return null;
    for (let i = 0; i < n; i++) {
      const d = off + 2 + i * 12;
      if (u16(d) !== tag) continue;
      const type = u16(d + 2), count = u32(d + 4), sz = TYPE_SIZE[type];
      if (!sz) return null;
      const bytes = count * sz;
      const at = bytes <= 4 ? d + 8 : u32(d + 8);
      if (at + bytes > t.length) return null;
      return { type, count, at };
    }
    return null;
  };
  const uint = (off, tag) => {
    const e = find(off, tag);
    if (!e || e.count < 1) return null;
    return e.type === 3 ? u16(e.at) : e.type === 4 ? u32(e.at) : null;
  };
  const time = (off, tag) => {
    const e = find(off, tag);
    if (!e || e.type !== 2 || e.count < 19) return null;
    const s = String.fromCharCode(...t.subarray(e.at, e.at + 19));
    const m = /^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s);
    if (!m) return null;
    const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return null;
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`;
  };
  const coord = (off, refTag, tag, pos, neg, limit) => {
    const r = find(off, refTag), e = find(off, tag);
    if (!r || r.type !== 2 || r.count < 1 || !e || e.type !== 5 || e.count < 3) return null;
    const ref = String.fromCharCode(t[r.at]);
    if (ref !== pos && ref !== neg) return null;
    let v = 0;
    for (let i = 0, unit = 1; i < 3; i++, unit *= 60) {
      const num = u32(e.at + i * 8), den = u32(e.at + i * 8 + 4);
      if (den === 0) return null;
      v += num / den / unit;
    }
    if (v > limit) return null;
    return ref === neg ? -v : v;
  };
  const ifd0 = u32(4);
  const o = uint(ifd0, 0x0112);
  if (o >= 1 && o <= 8) out.orientation = o;
  const exifIfd = uint(ifd0, 0x8769);
  out.capturedAt = (exifIfd && time(exifIfd, 0x9003)) || time(ifd0, 0x0132);
  const gps = uint(ifd0, 0x8825);
  if (gps) {
    const lat = coord(gps, 1, 2, 'N', 'S', 90), lon = coord(gps, 3, 4, 'E', 'W', 180);
    if (lat !== null && lon !== null) out.gps = { lat, lon };
  }
  return out;
}
