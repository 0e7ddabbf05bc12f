"""Stand-in (see the package doc)."""

from .configuration_utils import DistributedConfig  # noqa: F401
