"""`letter`: print-ready letters, one HTML file per run and a roster CSV for the village committee."""

from .send import LetterProvider
from .settings import LetterSettings

__all__ = ["LetterProvider", "LetterSettings"]
