/** Browser stand-in for lib/util/package_root.ts: there is no package folder, only the page's origin. */
export const packageRoot = '/';
