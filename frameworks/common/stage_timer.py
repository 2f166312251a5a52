"""Former name of the shared timer: `StageTimer` is `frameworks.common.timing.EventTimer` (same object,
one implementation). Kept only so hosts written against the old name (dispider, livecc, streamforest
branches) still import; new code imports `EventTimer` from `frameworks.common.timing`."""

from frameworks.common.timing import EventTimer as StageTimer

__all__ = ["StageTimer"]
