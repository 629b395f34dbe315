"""What the generative serving tests share: the served model's name and a served handle."""

from __future__ import annotations

from dataclasses import dataclass

from maas.generate.scheduler import Scheduler
from maas.serving.dataplane import DataPlane

LM_NAME = "tinygpt"


@dataclass
class Served:
    """A running REST server and what it serves."""

    url: str
    data_plane: DataPlane

    @property
    def scheduler(self) -> Scheduler:
        generator = self.data_plane.repository.resolve(LM_NAME).generator
        assert generator is not None
        return generator.scheduler
