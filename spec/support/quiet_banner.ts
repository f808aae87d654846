/** jest setupFiles: no tfjs Node banner in spec logs either (spec/cli/banner.spec.ts checks the fix on a fresh tfjs). */
import { silenceNodeBackendBanner } from '../../lib/backends/quiet_banner';

silenceNodeBackendBanner();
