/**
 * The Redis and NATS clients are optional peer dependencies: an app installs the ones it uses,
 * and a hub on the memory broker never loads either. This loads the module that imports a
 * client, and turns "Cannot find package" into a sentence that names what to install.
 *
 * @param load imports the module that imports the client (`() => import('./redis.ts')`).
 * @param what what needs the client, for the message: `the Redis broker`.
 * @param packages the packages `load` needs, as `npm install` takes them.
 */
export async function loadOptionalPeer<T>(
  load: () => Promise<T>,
  what: string,
  packages: readonly string[],
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const missing = missingPackage(error);
    if (missing === undefined || !packages.includes(missing)) throw error;
    const names = packages.length === 1 ? `the ${packages[0]} package` : `the packages ${list(packages)}`;
    throw new Error(`${what} needs ${names}: npm install ${packages.join(' ')}`, { cause: error });
  }
}

/**
 * The package a failed import could not find: Node's `ERR_MODULE_NOT_FOUND` ("Cannot find
 * package 'redis' imported from …") and `MODULE_NOT_FOUND` (bundlers' "Cannot find module
 * 'redis'") both name it in quotes.
 */
function missingPackage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const named = /Cannot find (?:package|module) '([^']+)'/.exec(error.message)?.[1];
  if (named === undefined) return undefined;
  // A path inside the package (`…/node_modules/redis/dist/index.js`) or a subpath (`redis/x`).
  const inside = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(named)?.[1];
  const name = inside ?? named;
  const parts = name.split(/[\\/]/);
  return name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function list(names: readonly string[]): string {
  return names.length <= 2
    ? names.join(' and ')
    : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
