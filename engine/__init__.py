"""The saferlab engine: pure Python, no front-end or SQL imports.

The CLI and the TUI call :class:`Lab`; heavy libraries load only inside the backend chosen.
"""

from .errors import SaferlabError
from .events import Event
from .lab import Lab, LoadedModel, saferlab_version
from .plan import RunPlan, RunSpec, SessionSpec
from .recorder import NullRecorder, Recorder
from .runner import RunOutcome, SessionOutcome
from .types import DecodingParams, GenerationRequest, GenerationResult, Item, Message, Meter, Verdict

__all__ = [
    "DecodingParams", "Event", "GenerationRequest", "GenerationResult", "Item", "Lab",
    "LoadedModel", "Message",
    "Meter", "NullRecorder", "Recorder", "RunOutcome", "RunPlan", "RunSpec", "SaferlabError",
    "SessionOutcome", "SessionSpec", "Verdict", "saferlab_version",
]
