// Display formatting. Locale and time zone are parameters so tests are deterministic.

/** "45 seconds", "1 minute", "2 minutes 5 seconds", "1 hour 3 minutes". */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.ceil(totalSeconds));
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (s < 60) return plural(s, 'second');
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  if (hours > 0)
    return minutes
      ? `${plural(hours, 'hour')} ${plural(minutes, 'minute')}`
      : plural(hours, 'hour');
  return seconds
    ? `${plural(minutes, 'minute')} ${plural(seconds, 'second')}`
    : plural(minutes, 'minute');
}

export function formatDateTime(
  iso: string | null,
  options: { locale?: string; timeZone?: string; never?: string } = {},
): string {
  if (iso === null) return options.never ?? 'never';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(options.locale, {
    dateStyle: 'medium',
    timeStyle: 'short',
    timeZone: options.timeZone,
  }).format(date);
}

/**
 * A `<input type="date">` value (YYYY-MM-DD, the user's local day) as the ISO instant at the
 * end of that day in the local time zone; null for an empty or invalid value.
 */
export function endOfLocalDay(value: string): string | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return null;
  const [, y, m, d] = match;
  const date = new Date(Number(y), Number(m) - 1, Number(d), 23, 59, 59, 999);
  if (Number.isNaN(date.getTime()) || date.getDate() !== Number(d)) return null;
  return date.toISOString();
}

/** "a, b , ,c" → ["a", "b", "c"]; duplicates dropped, order kept. */
export function parseList(text: string): string[] {
  return [
    ...new Set(
      text
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
}
