"""`[providers.letter]` settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import ProviderSettings


@dataclass(frozen=True)
class LetterSettings(ProviderSettings):
    dir: str = "letters"  # relative to the config file's folder
    pdf: bool = True  # also one PDF per village, with its 签收 roster (pdf.py); the HTML file stays
    workers: int = 0  # processes rendering villages' PDFs at once; 0: one per core
    sender: str = ""  # printed as the sender; empty: the item's department
    return_address: str = ""  # the return address above the window (退信地址)
    return_postcode: str = ""
    phone: str = ""  # the official phone printed beside the verification code
