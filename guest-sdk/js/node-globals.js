// The part of Node's `Buffer` that stream handlers written for Lambda use to
// read records (`Buffer.from(record.kinesis.data, 'base64').toString('utf8')`),
// so that they run unchanged: the JavaScript engine of a component has
// TextEncoder, TextDecoder, atob and btoa, but no Buffer.

if (typeof globalThis.Buffer === 'undefined') {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  class Buffer extends Uint8Array {
    static from(value, encoding = 'utf8') {
      if (typeof value !== 'string') return new Buffer(value instanceof ArrayBuffer ? value : Array.from(value));
      switch (encoding) {
        case 'base64': {
          const binary = atob(value.replace(/-/g, '+').replace(/_/g, '/'));
          const bytes = new Buffer(binary.length);
          for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
          return bytes;
        }
        case 'hex': {
          const bytes = new Buffer(value.length >> 1);
          for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(value.substr(i * 2, 2), 16);
          return bytes;
        }
        case 'utf8':
        case 'utf-8':
          return new Buffer(encoder.encode(value));
        default:
          throw new TypeError(`Buffer.from: the encoding ${encoding} is not supported here`);
      }
    }

    static isBuffer(value) {
      return value instanceof Buffer;
    }

    static byteLength(value, encoding = 'utf8') {
      return typeof value === 'string' ? Buffer.from(value, encoding).length : value.byteLength;
    }

    toString(encoding = 'utf8') {
      switch (encoding) {
        case 'base64': {
          let binary = '';
          for (const byte of this) binary += String.fromCharCode(byte);
          return btoa(binary);
        }
        case 'hex':
          return Array.from(this, (b) => b.toString(16).padStart(2, '0')).join('');
        case 'utf8':
        case 'utf-8':
          return decoder.decode(this);
        default:
          throw new TypeError(`buffer.toString: the encoding ${encoding} is not supported here`);
      }
    }
  }

  globalThis.Buffer = Buffer;
}
