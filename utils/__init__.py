"""Small shared helpers: the one-line error type, atomic file writes, robust image reading."""
from utils.errors import ToonFaceError

__all__ = ["ToonFaceError"]
