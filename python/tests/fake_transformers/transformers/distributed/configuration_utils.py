"""Stand-in (see the package doc): the distributed config's expert-parallel flag."""

from dataclasses import dataclass


@dataclass
class DistributedConfig:
    enable_expert_parallel: bool = False
