"""Small shared helpers: the one-line error type, atomic file writes, devices, the run folder
layout, process lifetime, memory."""
from utils.errors import ToonFaceError

__all__ = ["ToonFaceError"]
