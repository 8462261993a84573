// The part of Node's `Buffer` that stream handlers written for Lambda use to
// read records (`Buffer.from(record.kinesis.data, 'base64').toString('utf8')`),
// so that they run unchanged: the JavaScript engine of a component has
// TextEncoder, TextDecoder, atob and btoa, but no Buffer.

if (typeof globalThis.Buffer === 'undefined') {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  // The engine's own base64 and hex (SpiderMonkey's Uint8Array.fromBase64 and
  // friends): native code, where a loop over the bytes runs interpreted.
  const nativeBase64 = typeof Uint8Array.fromBase64 === 'function' && typeof Uint8Array.prototype.toBase64 === 'function';
  const nativeHex = typeof Uint8Array.fromHex === 'function' && typeof Uint8Array.prototype.toHex === 'function';

  // Makes a fresh Uint8Array a Buffer in place: no copy, and no call of the
  // derived class's constructor, which costs a few µs in the engine's
  // interpreter (a record's `Buffer.from(data, 'base64')` went from 7–11 µs to
  // 2–3.5 here; BENCHMARKS.md).
  const asBuffer = (bytes) => Object.setPrototypeOf(bytes, Buffer.prototype);

  // The engine's decoder, or undefined where the engine has none or refuses the
  // text. It reads padding or none and skips whitespace by default (its
  // `lastChunkHandling` is 'loose').
  const decodeNatively = (text) => {
    if (!nativeBase64) return undefined;
    try {
      return asBuffer(Uint8Array.fromBase64(text));
    } catch {
      return undefined;
    }
  };

  // Node reads both alphabets, with or without padding, skipping whitespace.
  // Standard base64, the common case, is tried as it is; only text the engine
  // refuses (the URL-safe alphabet, stray characters) is looked at again.
  const fromBase64 = (value) => {
    const bytes = decodeNatively(value);
    if (bytes) return bytes;
    const urlSafe = value.includes('-') || value.includes('_');
    const standard = urlSafe ? value.replace(/-/g, '+').replace(/_/g, '/') : value;
    // Stray characters: the lenient path below, as before.
    const decoded = urlSafe ? decodeNatively(standard) : undefined;
    if (decoded) return decoded;
    const binary = atob(standard);
    const out = new Buffer(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  };

  class Buffer extends Uint8Array {
    static from(value, encoding) {
      if (typeof value !== 'string') return new Buffer(value instanceof ArrayBuffer ? value : Array.from(value));
      switch (encoding) {
        case 'base64':
        case 'base64url':
          return fromBase64(value);
        case 'hex': {
          if (nativeHex && /^(?:[0-9a-fA-F]{2})*$/.test(value)) return asBuffer(Uint8Array.fromHex(value));
          const bytes = new Buffer(value.length >> 1);
          for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(value.substr(i * 2, 2), 16);
          return bytes;
        }
        case undefined:
        case 'utf8':
        case 'utf-8':
          return asBuffer(encoder.encode(value));
        default:
          throw new TypeError(`Buffer.from: the encoding ${encoding} is not supported here`);
      }
    }

    static isBuffer(value) {
      return value instanceof Buffer;
    }

    // As Node counts it: for base64 and hex, from the string's length alone
    // (whitespace counts; padding does not), not by decoding.
    static byteLength(value, encoding = 'utf8') {
      if (typeof value !== 'string') return value.byteLength;
      switch (encoding) {
        case 'base64':
        case 'base64url': {
          let n = value.length;
          if (n > 0 && value.charCodeAt(n - 1) === 0x3d) n--;
          if (n > 1 && value.charCodeAt(n - 1) === 0x3d) n--;
          return (n * 3) >>> 2;
        }
        case 'hex':
          return value.length >>> 1;
        default:
          return Buffer.from(value, encoding).length;
      }
    }

    toString(encoding) {
      // UTF-8 first: it is what a record's data is read as.
      switch (encoding) {
        case undefined:
        case 'utf8':
        case 'utf-8':
          return decoder.decode(this);
        case 'base64': {
          if (nativeBase64) return this.toBase64();
          let binary = '';
          for (const byte of this) binary += String.fromCharCode(byte);
          return btoa(binary);
        }
        case 'hex':
          if (nativeHex) return this.toHex();
          return Array.from(this, (b) => b.toString(16).padStart(2, '0')).join('');
        default:
          throw new TypeError(`buffer.toString: the encoding ${encoding} is not supported here`);
      }
    }
  }

  globalThis.Buffer = Buffer;
}
