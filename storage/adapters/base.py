"""What every dataset adapter returns: canonical rows plus rejects."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.rejects import Rejects

Row = dict[str, Any]


@dataclass
class Prepared:
    """Rows of the canonical tables (storage.tables.SCHEMAS) for one dataset.

    `given` counts the raw items the adapter saw per table, so that
    given = accepted (rows) + rejected can be checked per table.
    """

    images: list[Row] = field(default_factory=list)
    captions: list[Row] = field(default_factory=list)
    vqa: list[Row] = field(default_factory=list)
    ve: list[Row] = field(default_factory=list)
    nlvr2: list[Row] = field(default_factory=list)
    rejects: Rejects = field(default_factory=lambda: Rejects("prepare"))
    given: dict[str, int] = field(default_factory=dict)
    # Accepted counts of raw records that are not table rows (e.g. JSONL lines).
    accepted_extra: dict[str, int] = field(default_factory=dict)
    # Real paths of the folders every image must resolve into (storage.containment); none: the output folder.
    image_roots: tuple[Path, ...] = ()

    def tables(self) -> dict[str, list[Row]]:
        return {"images": self.images, "captions": self.captions, "vqa": self.vqa,
                "ve": self.ve, "nlvr2": self.nlvr2}


class DatasetError(ValueError):
    """A dataset's files are missing or structurally wrong (not a per-item problem)."""
