"""psaspm: a host-side PSA Secure Partition Manager in the shape of TF-M's SPM."""

from psaspm.errors import ConfigError, Deadlock, ManifestError, Panic, PanicRecord
from psaspm.kernel.memory import MemoryFault, Ptr
from psaspm.system import NsClient, System, load

__all__ = [
    "ConfigError",
    "Deadlock",
    "ManifestError",
    "MemoryFault",
    "NsClient",
    "Panic",
    "PanicRecord",
    "Ptr",
    "System",
    "load",
]
__version__ = "0.1.0"
