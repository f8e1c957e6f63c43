import { join } from "node:path";
import pino, { type Logger } from "pino";

/** The one pino logger of this process: JSON lines to `<logDir>/<name>.log`, or to stderr without a folder. */
export function processLogger(name: string, logDir?: string): Logger {
  const destination = logDir ? pino.destination({ dest: join(logDir, `${name}.log`), sync: true, mkdir: true }) : pino.destination(2);
  return pino({ name, level: process.env.DINO_COORD_LOG_LEVEL ?? "info", base: { pid: process.pid, process: name } }, destination);
}
