import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/**
 * The admin password, kept only as a salted scrypt hash made at start-up. A submitted password is hashed the same
 * way and compared in constant time, so neither the comparison nor an early exit reveals how much of it matched.
 */

const KEY_LENGTH = 64;
// N = 2^15 takes ~50-100 ms and 32 MiB per attempt: slow for guessing, fine for a sign-in form.
const PARAMS: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export interface PasswordCheck {
  verify(candidate: string): Promise<boolean>;
}

export async function createPasswordCheck(password: string): Promise<PasswordCheck> {
  const salt = randomBytes(16);
  const expected = await derive(password, salt);
  return {
    async verify(candidate) {
      // Bounded input: a megabyte "password" must not cost more than a normal one.
      const actual = await derive(candidate.slice(0, 1024), salt);
      return timingSafeEqual(actual, expected);
    },
  };
}

function derive(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, KEY_LENGTH, PARAMS, (error, key) => (error ? reject(error) : resolve(key)));
  });
}
