// The part of Node's process the examples use, for type-checking them
// without Node's own type package.
declare var process: { env: Record<string, string | undefined> };
