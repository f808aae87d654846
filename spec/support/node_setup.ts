/** Jest setup: what the Node entry (lib/node.ts) does on import, install the native CPU kernels. */
import '../../lib/backends/node_install';
