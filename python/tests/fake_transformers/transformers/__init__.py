"""A STAND-IN for transformers, for the CPU tests of moecheck's transformers glue only: the same
public names and shapes (configs, ALL_EXPERTS_FUNCTIONS, use_experts_implementation, the
Qwen3-MoE and gpt-oss experts classes), written for these tests. It proves that the glue
builds modules, selects implementations and loads weights; it proves nothing about the real
library (the GPU runs do that with the real one)."""

__version__ = "0.0-fake"


class _Config:
    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self._experts_implementation = None


class Qwen3MoeConfig(_Config):
    pass


class GptOssConfig(_Config):
    pass
