"""What the lesson measured, handed to its sections, and how a section shows a claim.

Its own file so that the sections' two files (``lesson_sections``, ``lesson_blocks``) both read it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnetlab.analysis import report
from resnetlab.analysis.figures import FigureFiles
from resnetlab.analysis.signal import SignalProfile
from resnetlab.experiments.claims import Claim


@dataclass(frozen=True)
class Facts:
    """Everything the lesson measured, for its sections.

    Attributes:
        depths: the degradation part's depths, shallow first.
        cfg: the resolved config of the degradation part's first run.
        degradation: what ``degradation.run`` returned.
        identity: what ``identity.run`` returned.
        profiles: the signal at initialisation (``signal_study``).
        signal_figure: its figure.
        weights: each degradation model's weight count per parameter name.
        train_images: the number of training images.
        signal_images: the images of the batch the signal at initialisation is measured on.
        deepened: ``lesson.deepened_check``.
        beyond: ``beyond.read_folders``: (found, missing).
        out: the lesson's folder.
        command: the command that reproduces the lesson.
        environment: the machine and versions.
    """

    depths: list[int]
    cfg: Any
    degradation: dict
    identity: dict
    profiles: list[SignalProfile]
    signal_figure: FigureFiles
    weights: dict[str, dict[str, int]]
    train_images: int
    signal_images: int
    deepened: dict
    beyond: tuple
    out: Path
    command: str
    environment: dict

    @property
    def shallow(self) -> int:
        return self.depths[0]

    @property
    def deep(self) -> int:
        return self.depths[-1]


def shown(made: list[Claim], *new: Claim) -> str:
    """Keep ``new`` in ``made`` and return their sentences as marked paragraphs."""
    made.extend(new)
    return "".join(report.claim(c.text, c.kind) for c in new)
