import pino, { type Logger } from "pino";

/** createLogger returns the JSON logger; header values that carry secrets are redacted. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "paas-operator" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["*.headers['x-api-key']", "*.headers.authorization", "apiKey", "*.apiKey"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
