"""The model adapter registry: ``@MODEL_ADAPTERS.register(name)``, entry points, registry.yaml."""

from vlbench.registry import Registry

MODEL_ADAPTERS: Registry = Registry("model adapter", entry_point_group="vlbench.models")
