/**
 * Intl.DateTimeFormat is costly to build (it loads time-zone and locale data: tens of microseconds, more than the
 * formatting itself) and cheap to reuse, and Parley formats dates on every message (the system prompt's date, the
 * quota windows). One formatter per locale and options for the life of the process; the keys are bounded by the
 * IANA zone list. An unknown time zone throws a RangeError here, as the constructor does, and is not cached.
 */
const formats = new Map<string, Intl.DateTimeFormat>();

export function dateFormat(locale: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale}|${JSON.stringify(options)}`;
  let format = formats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(locale, options);
    formats.set(key, format);
  }
  return format;
}
